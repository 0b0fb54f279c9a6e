//go:build !linux

package udpio

import (
	"errors"
	"net"
)

// msgTrunc is not reported by the portable read path here.
const msgTrunc = 0

// mmsgConn is unavailable: newMmsgConn returns nil and the Conn moves one
// datagram per call.
type mmsgConn struct{}

func newMmsgConn(*net.UDPConn, int) (*mmsgConn, error) { return nil, nil }

func (*mmsgConn) read([]Message) (int, error)  { return 0, errors.New("udpio: batching unsupported") }
func (*mmsgConn) write([]Message) (int, error) { return 0, errors.New("udpio: batching unsupported") }

// Sender sends one datagram per call here.
type Sender struct{ gsoDisabled uint64 }

// Targets keep the Linux caps (gso_linux.go), unused here.
const maxSegmentSize4, maxSegmentSize6 = 1500 - 20 - 8, 1500 - 40 - 8

// gsoAvailable: UDP GSO is Linux only.
func gsoAvailable() bool { return false }

// NewSender returns a Sender.
func NewSender() *Sender { return &Sender{} }

func (*Sender) send(t *Target, ms []Message) (int, error) {
	return writeEach(t.c, ms)
}

func (s *Sender) sendSpread(ts []*Target, ms []Message) int { return sendRuns(s, ts, ms) }

func setBuffers(c *net.UDPConn, read, write int) {
	if read > 0 {
		_ = c.SetReadBuffer(read)
	}
	if write > 0 {
		_ = c.SetWriteBuffer(write)
	}
}
