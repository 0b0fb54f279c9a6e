package stunserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// tcpInitialBuffer is a connection's first read buffer; it grows up to
// MaxMessageSize for a longer message.
const tcpInitialBuffer = 1024

// acceptLoop accepts connections until the listener is closed. Failures
// such as running out of file descriptors are retried with a backoff.
func (s *Server) acceptLoop(ln net.Listener, tr transport) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("stun server accept failed", "network", tr.String(), "err", err)
			if !s.backoff(&delay) {
				return
			}
			continue
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			continue
		}
		s.wg.Add(1) // the accept loop's own count keeps the group open
		go s.serveConn(c, tr)
	}
}

// track registers a new connection, or refuses it when the server is
// closing or MaxTCPConns are open.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(s.conns) >= s.cfg.MaxTCPConns {
		s.tcpRejected.Add(1)
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("stun server refused connection: MaxTCPConns reached", "remote", c.RemoteAddr().String())
		}
		return false
	}
	s.conns[c] = struct{}{}
	s.tcpAccepted.Add(1)
	s.tcpOpen.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.tcpOpen.Add(-1)
	c.Close()
}

// serveConn answers the STUN messages of one TCP or TLS connection, framed
// by their length field (RFC 8489, Section 6.2.2), until the peer closes
// it, sends something that is not STUN or announces a message longer than
// MaxMessageSize, stays idle for TCPIdleTimeout, or the server closes.
// Responses go back on the same connection in request order.
func (s *Server) serveConn(raw net.Conn, tr transport) {
	defer s.wg.Done()
	defer s.untrack(raw)
	idle := s.cfg.TCPIdleTimeout
	var c net.Conn = raw
	if tr == tTLS {
		tc := tls.Server(raw, s.tlsConfig())
		raw.SetDeadline(time.Now().Add(idle))
		if err := tc.Handshake(); err != nil {
			s.tlsFailures.Add(1)
			return
		}
		c = tc
	}
	o := origin{tr: tr, role: rolePrimary, local: addrPort(raw.LocalAddr())}
	from := addrPort(raw.RemoteAddr())
	w := newWorker(s.resp, &s.tcpStats)
	buf := make([]byte, tcpInitialBuffer)
	out := make([]byte, 0, tcpInitialBuffer)
	start, end := 0, 0 // buf[start:end] holds bytes read but not yet handled
	eof := false       // the last read failed: answer what is complete, then stop
	for {
		need := stun.HeaderSize
		if end-start >= stun.HeaderSize {
			n, err := stun.MessageLength(buf[start:end])
			if err != nil || n > MaxMessageSize {
				s.tcpStats.malformed.Add(1)
				return // framing is lost: only this connection pays
			}
			if end-start >= n {
				rep := w.handle(out[:0], buf[start:start+n], from, o)
				start += n
				if len(rep.b) > 0 {
					out = rep.b[:0] // keep a buffer that had to grow
					c.SetWriteDeadline(time.Now().Add(idle))
					if _, err := c.Write(rep.b); err != nil {
						s.tcpStats.sendErrors.Add(1)
						return
					}
				}
				continue
			}
			need = n
		}
		if eof {
			return
		}
		// Make room for need bytes from start, then read.
		if start+need > len(buf) {
			if need > len(buf) {
				nb := make([]byte, min(max(need, 2*len(buf)), MaxMessageSize))
				end = copy(nb, buf[start:end])
				buf = nb
			} else {
				end = copy(buf, buf[start:end])
			}
			start = 0
		} else if start == end {
			start, end = 0, 0
		}
		c.SetReadDeadline(time.Now().Add(idle))
		k, err := c.Read(buf[end:])
		end += k
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.tcpTimeouts.Add(1)
			}
			eof = true
		}
	}
}
