//go:build !linux

package turnserver

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// dontFragmentSupported: elsewhere DONT-FRAGMENT is answered with 420, as
// RFC 8656, Section 7.2, step 4 says for a server that cannot set DF.
const dontFragmentSupported = false

func setDontFragment(*net.UDPConn, bool) error {
	return errors.New("not supported on this platform")
}

type sockaddr struct{}

// reusePortSupported: without SO_REUSEPORT, Connect dials from another
// port of the relay IP address (a deviation from RFC 6062, Section 5.2).
const reusePortSupported = false

// reusePort does nothing here.
func reusePort(string, string, syscall.RawConn) error { return nil }

// relayReader: off Linux each relay socket has its own read goroutine.
type relayReader struct{}

type poller struct{}

func (s *Server) startPollersLocked() error { return nil }
func (s *Server) stopPollers()              {}

// start starts the relay's read goroutine, which ends when the socket
// closes; Server.wg counts it.
func (r *relay) start() {
	r.a.s.wg.Add(1)
	go r.readLoop()
}

func (r *relay) stopReading() {}

// readLoop reads the relay socket until it is closed. Off Linux the read
// blocks holding a pooled buffer, so an idle allocation costs that buffer
// and a goroutine.
func (r *relay) readLoop() {
	defer r.a.s.wg.Done()
	for {
		pb := getReadBuf()
		n, from, err := r.conn.ReadFromUDPAddrPort(pb.b[headroom:])
		if err != nil {
			putReadBuf(pb)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.a.s.readErrors.Add(1)
			continue
		}
		r.fromPeer(pb, n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		putReadBuf(pb)
	}
}
