//go:build !linux

package udpio

import (
	"errors"
	"net"
	"syscall"
)

const reusePortSupported = false

// msgTrunc is not reported by the portable read path here.
const msgTrunc = 0

func setReusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("udpio: SO_REUSEPORT is not supported on this platform")
}

// mmsgConn is unavailable: newMmsgConn returns nil and the Conn moves one
// datagram per call.
type mmsgConn struct{}

func newMmsgConn(*net.UDPConn, int) (*mmsgConn, error) { return nil, nil }

func (*mmsgConn) read([]Message) (int, error)  { return 0, errors.New("udpio: batching unsupported") }
func (*mmsgConn) write([]Message) (int, error) { return 0, errors.New("udpio: batching unsupported") }

// Sender sends one datagram per call here.
type Sender struct{ gsoDisabled uint64 }

// gsoAvailable: UDP GSO is Linux only.
func gsoAvailable() bool { return false }

// NewSender returns a Sender.
func NewSender() *Sender { return &Sender{} }

func (*Sender) send(t *Target, ms []Message) (int, error) {
	return writeEach(t.c, ms)
}

func setBuffers(c *net.UDPConn, read, write int) {
	if read > 0 {
		_ = c.SetReadBuffer(read)
	}
	if write > 0 {
		_ = c.SetWriteBuffer(write)
	}
}
