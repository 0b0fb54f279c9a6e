// Package ibserver starts icebreaker's STUN and TURN server in the calling
// process, wired as `icebreaker serve` wires it for the TURN benchmark
// (static users, the deny-by-default peer policy with explicit exceptions,
// unlimited allocation quotas), but over UDP only. It exists so that the
// benchmark tools can be tested without the binary and so that the server
// can be profiled with runtime/pprof.
package ibserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// Config is what the benchmark varies. The zero value of a field means the
// default noted.
type Config struct {
	Listen     netip.AddrPort    // UDP listen address; must be set (port 0 picks one)
	Realm      string            // default "bench"
	Users      map[string]string // name to password; required
	AllowPeers []netip.Prefix    // exceptions to the peer policy's denials
	UDPSockets int               // 0: one per CPU
	// Quotas replaces the benchmark's (unlimited allocations per user,
	// the defaults otherwise) when not nil: the attack client's tests
	// run against the daemon's limits.
	Quotas *turnserver.Quotas
	// RESTSecrets enable TURN REST credentials.
	RESTSecrets []string
	// Logger receives the TURN server's records; nil is silent.
	Logger *slog.Logger
	// TCP serves TCP as well, on a port of its own (TCPAddr).
	TCP bool
	// ErrorRate bounds error answers to unauthenticated requests per
	// second and source address (burst twice that); 0 means none.
	ErrorRate int
}

// Server is a running server. Close stops it and waits for its goroutines;
// it is safe to call more than once.
type Server struct {
	stun   *stunserver.Server
	turn   *turnserver.Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if !cfg.Listen.IsValid() {
		return nil, errors.New("ibserver: no listen address")
	}
	if cfg.Realm == "" {
		cfg.Realm = "bench"
	}
	auth, err := turnauth.New(turnauth.Config{Realm: cfg.Realm, Users: turnauth.StaticUsers(cfg.Users), RESTSecrets: cfg.RESTSecrets})
	if err != nil {
		return nil, fmt.Errorf("ibserver: %w", err)
	}
	pol, err := policy.New(policy.Config{Allow: cfg.AllowPeers})
	if err != nil {
		return nil, fmt.Errorf("ibserver: %w", err)
	}
	relay := cfg.Listen.Addr().Unmap()
	tcfg := turnserver.Config{Auth: auth, Policy: pol, Quotas: turnserver.Quotas{AllocationsPerUser: -1}, Logger: cfg.Logger}
	if cfg.Quotas != nil {
		tcfg.Quotas = *cfg.Quotas
	}
	if cfg.ErrorRate > 0 {
		if tcfg.ErrorLimiter, err = iplimit.New(iplimit.Config{Rate: float64(cfg.ErrorRate), Burst: 2 * cfg.ErrorRate}); err != nil {
			return nil, fmt.Errorf("ibserver: %w", err)
		}
	}
	if relay.Is4() {
		tcfg.RelayIPv4 = relay
	} else {
		tcfg.RelayIPv6 = relay
	}
	ts, err := turnserver.New(tcfg)
	if err != nil {
		return nil, fmt.Errorf("ibserver: %w", err)
	}
	scfg := stunserver.Config{UDP: cfg.Listen, UDPSockets: cfg.UDPSockets, Handler: ts}
	if cfg.TCP {
		scfg.TCP = cfg.Listen
	}
	ss, err := stunserver.Listen(scfg)
	if err != nil {
		_ = ts.Close()
		return nil, fmt.Errorf("ibserver: %w", err)
	}
	var own []netip.AddrPort
	for _, ep := range ss.Addrs() {
		own = append(own, ep.Addr)
	}
	pol.SetOwn(own)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{stun: ss, turn: ts, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- ss.Serve(ctx) }()
	return s, nil
}

// Addr returns the UDP address the server listens on.
func (s *Server) Addr() netip.AddrPort {
	for _, ep := range s.stun.Addrs() {
		if ep.Network == "udp" {
			return ep.Addr
		}
	}
	return netip.AddrPort{}
}

// TCPAddr returns the TCP address the server listens on, if it does.
func (s *Server) TCPAddr() netip.AddrPort {
	for _, ep := range s.stun.Addrs() {
		if ep.Network == "tcp" {
			return ep.Addr
		}
	}
	return netip.AddrPort{}
}

// Stats returns the TURN server's counters.
func (s *Server) Stats() turnserver.Stats { return s.turn.Stats() }

// Close stops the STUN listeners, then the TURN server.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		err := <-s.done
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		s.err = errors.Join(err, s.stun.Close(), s.turn.Close())
	})
	return s.err
}
