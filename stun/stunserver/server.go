package stunserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// ErrServerClosed is returned by Serve on a Server that was already closed.
var ErrServerClosed = errors.New("stunserver: server closed")

var errServing = errors.New("stunserver: Serve called twice")

// Server is a STUN Binding server. Listen binds its sockets; Serve runs it
// until its context ends or Close is called. All methods are safe for
// concurrent use. A Server is not reusable after Close.
type Server struct {
	cfg  Config
	log  *slog.Logger
	resp *responder

	udp       [4][]*udpSocket // by role; only rolePrimary without RFC 5780
	tcp, tls  net.Listener
	endpoints []Endpoint

	tcpStats    counters
	tcpOpen     atomic.Int64
	tcpAccepted atomic.Uint64
	tcpRejected atomic.Uint64
	tcpTimeouts atomic.Uint64
	tlsFailures atomic.Uint64
	queueDrops  atomic.Uint64
	// Connections refused or closed by the limits against holding.
	tcpPerIP, tlsRefused, tcpMsgTimeouts, tcpRefused, tcpBufRefused atomic.Uint64
	bufHeld                                                         atomic.Int64 // bytes of large read buffers held (readbuf.go)

	done      chan struct{} // closed by Close
	started   chan struct{} // closed when Serve has started its goroutines
	closeOnce sync.Once
	wg        sync.WaitGroup // every goroutine Serve starts

	mu      sync.Mutex // guards the fields below
	serving bool
	closed  bool
	conns   map[net.Conn]struct{} // open TCP connections (the raw conn for TLS)
}

// Listen validates cfg and binds every socket, so that Addrs reports the
// actual ports, but starts nothing: call Serve. The caller must Close the
// Server.
func Listen(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	s := &Server{
		cfg:     c,
		log:     c.Logger,
		done:    make(chan struct{}),
		started: make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
		resp: &responder{
			software: c.Software,
			rfc5780:  c.AlternateIP.IsValid(),
			handler:  c.Handler,
		},
	}
	s.resp.other, _ = c.Handler.(OtherHandler)
	s.resp.closer, _ = c.Handler.(ConnCloseHandler)
	if err := s.listen(); err != nil {
		s.closeSockets()
		return nil, err
	}
	return s, nil
}

func (s *Server) listen() error {
	if s.cfg.UDP.IsValid() {
		if err := s.listenUDP(); err != nil {
			return err
		}
	}
	for _, l := range []struct {
		network string
		addr    netip.AddrPort
		ln      *net.Listener
	}{{"tcp", s.cfg.TCP, &s.tcp}, {"tls", s.cfg.TLS, &s.tls}} {
		if !l.addr.IsValid() {
			continue
		}
		ln, err := net.Listen(tcpNetwork(l.addr.Addr()), l.addr.String())
		if err != nil {
			return fmt.Errorf("stunserver: listen %s %v: %w", l.network, l.addr, err)
		}
		*l.ln = ln
		s.endpoints = append(s.endpoints, Endpoint{Network: l.network, Addr: netx.AddrPort(ln.Addr()), Role: RolePrimary})
	}
	return nil
}

func tcpNetwork(a netip.Addr) string {
	switch {
	case a.Is4():
		return "tcp4"
	case a.IsUnspecified():
		return "tcp" // dual stack
	}
	return "tcp6"
}

// Addrs returns every address the server listens on, with the ports
// actually bound. The slice is the caller's.
func (s *Server) Addrs() []Endpoint {
	return append([]Endpoint(nil), s.endpoints...)
}

// Serve serves every socket until ctx is done or Close is called, then
// closes the server and returns nil once every goroutine it started has
// exited. It returns ErrServerClosed if the server was closed before, and
// an error if Serve is already running.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.serving {
		s.mu.Unlock()
		return errServing
	}
	s.serving = true
	for _, group := range s.udp {
		for _, u := range group {
			s.wg.Add(1)
			go s.readUDP(u)
		}
	}
	if s.tcp != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.tcp, tTCP)
	}
	if s.tls != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.tls, tTLS)
	}
	close(s.started)
	s.mu.Unlock()

	for _, e := range s.endpoints {
		s.log.Info("stun server listening", "network", e.Network, "addr", e.Addr.String(), "role", e.Role)
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	s.Close()
	st := s.Stats()
	s.log.Info("stun server stopped", "requests", st.Requests, "responses", st.Responses,
		"error_responses", st.ErrorResponses, "malformed", st.Malformed, "tcp_accepted", st.TCPAccepted)
	return nil
}

// Close closes every socket and connection and returns once every goroutine
// the server started has exited. It may be called more than once, from any
// goroutine; it always returns nil.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		for c := range s.conns {
			c.Close() // the raw TCP conn: never blocks, unlike tls.Conn.Close
		}
		s.mu.Unlock()
		s.closeSockets()
	})
	s.wg.Wait()
	return nil
}

func (s *Server) closeSockets() {
	for _, group := range s.udp {
		for _, u := range group {
			u.conn.Close()
		}
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.tls != nil {
		s.tls.Close()
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	var st Stats
	for _, group := range s.udp {
		for _, u := range group {
			u.st.addTo(&st)
		}
	}
	s.tcpStats.addTo(&st)
	st.TCPConns = s.tcpOpen.Load()
	st.TCPAccepted = s.tcpAccepted.Load()
	st.TCPRejected = s.tcpRejected.Load()
	st.TCPTimeouts = s.tcpTimeouts.Load()
	st.TLSHandshakeErrors = s.tlsFailures.Load()
	st.QueueDrops = s.queueDrops.Load()
	st.TCPPerIPRejected = s.tcpPerIP.Load()
	st.TLSHandshakesRefused = s.tlsRefused.Load()
	st.TCPMessageTimeouts = s.tcpMsgTimeouts.Load()
	st.TCPFramesRefused = s.tcpRefused.Load()
	st.TCPBufferRefused = s.tcpBufRefused.Load()
	st.TCPBufferedBytes = s.bufHeld.Load()
	return st
}

// backoff waits d, doubled from 5 ms up to 1 s, after a socket error, so
// that a persistent error does not spin. It returns false if the server
// closed meanwhile.
func (s *Server) backoff(d *time.Duration) bool {
	switch {
	case *d == 0:
		*d = 5 * time.Millisecond
	case *d < time.Second:
		*d = min(2**d, time.Second)
	}
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-s.done:
		return false
	case <-t.C:
		return true
	}
}

// tlsConfig is the server's TLS configuration; the clone Listen made.
func (s *Server) tlsConfig() *tls.Config { return s.cfg.TLSConfig }
