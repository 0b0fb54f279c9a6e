package stunserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

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
// closing, MaxTCPConns are open, or its address holds what Config.PerIP
// allows.
func (s *Server) track(c net.Conn) bool {
	ip := netx.AddrPort(c.RemoteAddr()).Addr()
	if err := s.cfg.PerIP.Acquire(ip); err != nil {
		s.tcpPerIP.Add(1)
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("stun server refused connection", "remote", c.RemoteAddr().String(), "err", err)
		}
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.cfg.PerIP.Release(ip)
		return false
	}
	if len(s.conns) >= s.cfg.MaxTCPConns {
		s.cfg.PerIP.Release(ip)
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
	s.cfg.PerIP.Release(netx.AddrPort(c.RemoteAddr()).Addr())
}

// serveConn answers the messages of one TCP or TLS connection until the
// peer closes it, sends something that is neither STUN nor a message its
// OtherHandler takes, announces a message longer than the server reads,
// stays idle for TCPIdleTimeout (unless a Handler said KeepOpen), takes
// longer than MessageTimeout to send one message, needs a read buffer
// when MaxReadBuffers are spent, or the server closes. STUN messages are
// framed by their length field (RFC 8489, Section 6.2.2), other messages
// by the OtherHandler (for TURN, ChannelData by its header and padding:
// RFC 8656, Section 12.5). Responses go back on the same connection in
// request order; messages a Handler sends later go through the
// connection's write queue (tcpConn).
func (s *Server) serveConn(raw net.Conn, tr transport) {
	defer s.wg.Done()
	idle, msgTimeout := s.cfg.TCPIdleTimeout, s.cfg.MessageTimeout
	tc := &tcpConn{s: s, raw: raw, c: raw, tr: tr, local: netx.AddrPort(raw.LocalAddr()), remote: netx.AddrPort(raw.RemoteAddr())}
	w := newWorker(s.resp, &s.tcpStats)
	rb := newReadBuf(s)
	var (
		detach   func(net.Conn, []byte)
		leftover []byte
	)
	defer func() {
		rb.release()
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
		if !s.cfg.PerIP.Allow(tc.remote.Addr()) {
			s.tlsRefused.Add(1)
			return
		}
		tlsc := tls.Server(raw, s.tlsConfig())
		raw.SetDeadline(time.Now().Add(min(idle, msgTimeout)))
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
	out := make([]byte, 0, tcpInitialBuffer)
	eof := false // the last read failed: answer what is complete, then stop
	// began is when the first byte of the message that rb holds in part
	// arrived: the whole message must follow by began+msgTimeout (RFC
	// 8489, Section 6.2.2, leaves the timing of a stream to the server).
	var began, lastRead time.Time
	for {
		// Other messages are only valid once this connection has carried
		// a message to the Handler (for TURN an Allocate, then a
		// ChannelBind): before that, bytes such as "GET " are garbage,
		// not a channel header.
		fo := other
		if !w.delegated {
			fo = nil
		}
		n, need := 0, 1
		if b := rb.pending(); len(b) > 0 {
			var fail frameFailure
			n, need, fail = frameLength(b, fo)
			switch fail {
			case frameRefused:
				s.tcpRefused.Add(1)
				return
			case frameMalformed:
				s.tcpStats.malformed.Add(1)
				return // framing is lost: only this connection pays
			}
			if n > 0 && len(b) >= n {
				rep := w.handle(out[:0], b[:n], from, o)
				rb.consume(n)
				began = lastRead // the rest, if any, arrived by the last read
				if len(rep.b) > 0 {
					out = rep.b[:0] // keep a buffer that had to grow
					c.SetWriteDeadline(time.Now().Add(idle))
					if _, err := c.Write(rep.b); err != nil {
						s.tcpStats.sendErrors.Add(1)
						return
					}
				}
				if f := tc.takeDetach(); f != nil {
					detach, leftover = f, append([]byte(nil), rb.pending()...)
					c.SetDeadline(time.Time{})
					return
				}
				continue
			}
			if n > 0 {
				need = n // wait for the whole message
			}
		}
		if eof {
			return
		}
		if !rb.room(need) {
			s.tcpBufRefused.Add(1)
			return
		}
		partial := len(rb.pending()) > 0
		switch {
		case partial:
			d := began.Add(msgTimeout)
			if di := time.Now().Add(idle); !tc.keepOpen.Load() && di.Before(d) {
				d = di
			}
			c.SetReadDeadline(d)
		case tc.keepOpen.Load():
			c.SetReadDeadline(time.Time{})
		default:
			c.SetReadDeadline(time.Now().Add(idle))
		}
		k, err := c.Read(rb.free())
		lastRead = time.Now()
		if k > 0 && !partial {
			began = lastRead
		}
		rb.filled(k)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if partial {
					s.tcpMsgTimeouts.Add(1)
				} else {
					s.tcpTimeouts.Add(1)
				}
			}
			eof = true
		}
	}
}

// frameFailure is why frameLength could not frame a message.
type frameFailure int

const (
	frameOK        frameFailure = iota
	frameRefused                // the OtherHandler refused it
	frameMalformed              // neither STUN nor another message, or too long
)

// frameLength returns the size of the message that starts b (at least one
// byte): a STUN message (RFC 8489, Section 6.2.2) or, with other set, a
// message of the OtherHandler's protocol, framed by it (for TURN, a
// ChannelData frame: RFC 8656, Section 12.5). When b is too short to
// tell, it returns 0 and the number of bytes to wait for. A message the
// OtherHandler refuses, one that is neither, and one longer than the
// server reads fail: the connection's framing is lost.
func frameLength(b []byte, other stun.FrameFunc) (n, need int, fail frameFailure) {
	n, need, isSTUN, err := stun.StreamFrame(b, other)
	limit := maxOtherFrame
	if isSTUN {
		limit = MaxMessageSize
	}
	switch {
	case err != nil && !isSTUN && other != nil:
		return 0, 0, frameRefused
	case err != nil || n > limit || need > limit:
		return 0, 0, frameMalformed
	}
	return n, need, frameOK
}

// maxOtherFrame is the longest frame of an OtherHandler's protocol that
// the server reads: 64 KiB and a 4-byte header (a ChannelData frame with
// 65,535 bytes of data, padded: RFC 8656, Section 12.5).
const maxOtherFrame = 4 + 65536
