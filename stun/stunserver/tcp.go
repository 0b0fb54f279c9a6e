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
	s.forget(c)
	c.Close()
}

// forget stops tracking a connection without closing it.
func (s *Server) forget(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.tcpOpen.Add(-1)
}

// serveConn answers the messages of one TCP or TLS connection until the
// peer closes it, sends something that is neither STUN nor a message its
// OtherHandler takes, announces a message longer than the
// server reads, stays idle for TCPIdleTimeout (unless a Handler said
// KeepOpen), or the server closes. STUN messages are framed by their length
// field (RFC 8489, Section 6.2.2), other messages by the OtherHandler (for
// TURN, ChannelData by its header and padding: RFC 8656, Section 12.5).
// Responses go back on the same connection in request order; messages a Handler sends later go through the
// connection's write queue (tcpConn).
func (s *Server) serveConn(raw net.Conn, tr transport) {
	defer s.wg.Done()
	idle := s.cfg.TCPIdleTimeout
	tc := &tcpConn{s: s, raw: raw, c: raw, tr: tr, local: addrPort(raw.LocalAddr()), remote: addrPort(raw.RemoteAddr())}
	w := newWorker(s.resp, &s.tcpStats)
	var (
		detach   func(net.Conn, []byte)
		leftover []byte
	)
	defer func() {
		if detach != nil {
			s.forget(raw)
			detach(tc.c, leftover)
			return
		}
		tc.shutdown()
		s.untrack(raw)
		if w.delegated && s.resp.closer != nil {
			s.resp.closer.ConnClosed(tc)
		}
	}()
	if tr == tTLS {
		tlsc := tls.Server(raw, s.tlsConfig())
		raw.SetDeadline(time.Now().Add(idle))
		if err := tlsc.Handshake(); err != nil {
			s.tlsFailures.Add(1)
			return
		}
		tc.c = tlsc
	}
	c := tc.c
	o := origin{tr: tr, role: rolePrimary, local: tc.local, conn: tc}
	from := tc.remote
	var other stun.FrameFunc // the OtherHandler's framer, for this connection
	if h := s.resp.other; h != nil {
		other = func(b []byte) (int, int, error) { return h.FrameOther(tc, b) }
	}
	buf := make([]byte, tcpInitialBuffer)
	out := make([]byte, 0, tcpInitialBuffer)
	start, end := 0, 0 // buf[start:end] holds bytes read but not yet handled
	eof := false       // the last read failed: answer what is complete, then stop
	for {
		// Other messages are only valid once this connection has carried
		// a message to the Handler (for TURN an Allocate, then a
		// ChannelBind): before that, bytes such as "GET " are garbage,
		// not a channel header.
		fo := other
		if !w.delegated {
			fo = nil
		}
		need, header := frameLength(buf[start:end], fo)
		if need < 0 {
			s.tcpStats.malformed.Add(1)
			return // framing is lost: only this connection pays
		}
		if end-start >= need && need > 0 {
			rep := w.handle(out[:0], buf[start:start+need], from, o)
			start += need
			if len(rep.b) > 0 {
				out = rep.b[:0] // keep a buffer that had to grow
				c.SetWriteDeadline(time.Now().Add(idle))
				if _, err := c.Write(rep.b); err != nil {
					s.tcpStats.sendErrors.Add(1)
					return
				}
			}
			if f := tc.takeDetach(); f != nil {
				detach, leftover = f, append([]byte(nil), buf[start:end]...)
				c.SetDeadline(time.Time{})
				return
			}
			continue
		}
		if need == 0 {
			need = header // the header is incomplete
		}
		if eof {
			return
		}
		// Make room for need bytes from start, then read.
		if start+need > len(buf) {
			if need > len(buf) {
				nb := make([]byte, max(need, min(2*len(buf), MaxMessageSize)))
				end = copy(nb, buf[start:end])
				buf = nb
			} else {
				end = copy(buf, buf[start:end])
			}
			start = 0
		} else if start == end {
			start, end = 0, 0
		}
		if tc.keepOpen.Load() {
			c.SetReadDeadline(time.Time{})
		} else {
			c.SetReadDeadline(time.Now().Add(idle))
		}
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

// frameLength returns the size of the message that starts b: a STUN
// message (RFC 8489, Section 6.2.2) or, with other set, a message of the
// OtherHandler's protocol, framed by it (for TURN, a ChannelData frame:
// RFC 8656, Section 12.5). When b is too short to tell, it returns 0 and
// the number of bytes to wait for; for a message that is neither, one the
// OtherHandler refuses, or one longer than the server reads, -1.
func frameLength(b []byte, other stun.FrameFunc) (n, need int) {
	n, need, isSTUN, err := stun.StreamFrame(b, other)
	limit := maxOtherFrame
	if isSTUN {
		limit = MaxMessageSize
	}
	if err != nil || n > limit || need > limit {
		return -1, 0
	}
	return n, need
}

// maxOtherFrame is the longest frame of an OtherHandler's protocol that
// the server reads: 64 KiB and a 4-byte header (a ChannelData frame with
// 65,535 bytes of data, padded: RFC 8656, Section 12.5).
const maxOtherFrame = 4 + 65536
