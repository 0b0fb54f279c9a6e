package turnclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// The client against icebreaker's own TURN server, run in process on
// loopback: the same matrix as against coturn. These tests are not
// parallel, so that each can check that neither the client nor the server
// leaves a goroutine behind.

const (
	ourRealm  = "icebreaker.test"
	ourSecret = "rest-secret"
)

type ourServer struct {
	udp, tcp, tls netip.AddrPort
	tlsConfig     *tls.Config       // for the client: trusts the server's certificate
	tlsLeaf       *x509.Certificate // the server's certificate
}

type ourOpts struct {
	ip       string // listening IP; default 127.0.0.1
	tls      bool
	tlsNames []string       // the names of the TLS certificate; default 127.0.0.1
	policy   *policy.Policy // nil: allow loopback
	quota    int            // allocations per user; 0: the server's default
}

// startOurs starts a turnserver behind a stunserver on loopback, with the
// users u:p and w:p and REST secret ourSecret, relaying from 127.0.0.1
// and ::1 (::1 only when it listens on IPv6). Cleanup closes both.
func startOurs(t *testing.T, o ourOpts) *ourServer {
	t.Helper()
	ip := netip.MustParseAddr("127.0.0.1")
	if o.ip != "" {
		ip = netip.MustParseAddr(o.ip)
	}
	auth, err := turnauth.New(turnauth.Config{
		Realm:       ourRealm,
		Users:       turnauth.StaticUsers{"u": "p", "w": "p"},
		RESTSecrets: []string{ourSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	pol := o.policy
	if pol == nil {
		pol, err = policy.New(policy.Config{Allow: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := turnserver.Config{
		Auth:      auth,
		Policy:    pol,
		RelayIPv4: netip.MustParseAddr("127.0.0.1"),
		RelayIPv6: netip.MustParseAddr("::1"),
		Quotas:    turnserver.Quotas{AllocationsPerUser: o.quota},
	}
	if ip.Is6() {
		cfg.RelayIPv4 = netip.Addr{} // IPv6 only
	}
	ts, err := turnserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg := stunserver.Config{
		UDP:        netip.AddrPortFrom(ip, 0),
		TCP:        netip.AddrPortFrom(ip, 0),
		UDPSockets: 1,
		Handler:    ts,
	}
	s := &ourServer{}
	if o.tls {
		cert := testutil.SelfSignedCert(t, o.tlsNames...)
		scfg.TLS = netip.AddrPortFrom(ip, 0)
		scfg.TLSConfig = cert.Server
		s.tlsConfig = &tls.Config{RootCAs: cert.Pool}
		s.tlsLeaf = cert.Server.Certificates[0].Leaf
	}
	ss, err := stunserver.Listen(scfg)
	if err != nil {
		ts.Close()
		t.Fatal(err)
	}
	for _, ep := range ss.Addrs() {
		switch ep.Network {
		case "udp":
			s.udp = ep.Addr
		case "tcp":
			s.tcp = ep.Addr
		case "tls":
			s.tls = ep.Addr
		}
	}
	served := make(chan error, 1)
	go func() { served <- ss.Serve(context.Background()) }()
	t.Cleanup(func() {
		ss.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.Close()
	})
	// Once a Binding is answered, Serve has started all its goroutines,
	// so that the leak checks of subtests count them as before.
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := stunclient.New(conn, stunclient.Config{Retransmit: stunclient.Retransmit{RTO: 50 * time.Millisecond, Rc: 20, Rm: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Binding(t.Context(), s.udp); err != nil {
		t.Fatalf("the server does not answer: %v", err)
	}
	return s
}

func TestOurServer(t *testing.T) {
	checkNoLeak(t)
	s := startOurs(t, ourOpts{tls: true})
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"UDP", Config{Server: s.udp.String(), Username: "u", Password: "p"}},
		{"TCP", Config{Server: s.tcp.String(), Transport: TCP, Username: "u", Password: "p"}},
		{"TLS", Config{Server: s.tls.String(), Transport: TLS, TLSConfig: s.tlsConfig, Username: "u", Password: "p"}},
		{"REST", Config{Server: s.udp.String(), Secret: ourSecret, RESTUser: "alice", RESTTTL: time.Hour}},
		{"REST over TCP", Config{Server: s.tcp.String(), Transport: TCP, Secret: ourSecret}},
	} {
		t.Run(tc.name, func(t *testing.T) { testRelay(t, tc.cfg, "127.0.0.1") })
	}
	t.Run("dual", func(t *testing.T) {
		requireIPv6(t)
		peer6 := echoPeer(t, "::1")
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		r, err := Allocate(ctx, Config{Server: s.udp.String(), Family: Dual, Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rel := r.Relayed()
		if len(rel) != 2 || !rel[0].Addr().Is4() || !rel[1].Addr().Is6() {
			t.Fatalf("relayed %v, want an IPv4 and an IPv6 address", rel)
		}
		roundTrips(t, r, echoPeer(t, "127.0.0.1"))
		roundTrips(t, r, peer6)
		t.Logf("dual: relayed %v, stats %+v", rel, r.Stats())
	})
	for _, tr := range []Transport{TCP, TLS} {
		t.Run("TCP allocation over "+tr.String(), func(t *testing.T) {
			server := s.tcp
			if tr == TLS {
				server = s.tls
			}
			testTCPRelay(t, Config{Server: server.String(), Transport: tr, TLSConfig: s.tlsConfig, Username: "u", Password: "p"}, "127.0.0.1")
		})
	}
	t.Run("TCP allocation with REST", func(t *testing.T) {
		testTCPRelay(t, Config{Server: s.tcp.String(), Secret: ourSecret, RESTUser: "bob"}, "127.0.0.1")
	})
}

func TestOurServerIPv6(t *testing.T) {
	requireIPv6(t)
	checkNoLeak(t)
	s := startOurs(t, ourOpts{ip: "::1"})
	t.Run("UDP", func(t *testing.T) {
		testRelay(t, Config{Server: s.udp.String(), Family: IPv6, Username: "u", Password: "p"}, "::1")
	})
	t.Run("TCP", func(t *testing.T) {
		testRelay(t, Config{Server: s.tcp.String(), Transport: TCP, Family: IPv6, Username: "u", Password: "p"}, "::1")
	})
	t.Run("TCP allocation", func(t *testing.T) {
		testTCPRelay(t, Config{Server: s.tcp.String(), Family: IPv6, Username: "u", Password: "p"}, "::1")
	})
}

// TestOurServerErrors checks the typed errors: 486 over quota, 403 from
// the default peer policy (which denies loopback), 401 for a wrong
// password.
func TestOurServerErrors(t *testing.T) {
	checkNoLeak(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	t.Run("quota", func(t *testing.T) {
		s := startOurs(t, ourOpts{quota: 1})
		for _, tr := range []Transport{UDP, TCP} {
			server := s.udp
			if tr == TCP {
				server = s.tcp
			}
			cfg := Config{Server: server.String(), Transport: tr, Username: "u", Password: "p"}
			r, err := Allocate(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Allocate(ctx, cfg)
			if !errors.Is(err, ErrQuotaReached) {
				t.Errorf("%s: second allocation over quota 1: %v, want ErrQuotaReached", tr, err)
			}
			if se, ok := errors.AsType[*stun.Error](err); !ok || se.Code != stun.CodeAllocationQuotaReached {
				t.Errorf("%s: error %v does not carry the 486 *stun.Error", tr, err)
			}
			tcfg := cfg
			tcfg.Server, tcfg.Transport = s.tcp.String(), TCP
			if _, err := AllocateTCP(ctx, tcfg); !errors.Is(err, ErrQuotaReached) {
				t.Errorf("%s: TCP allocation over quota 1: %v, want ErrQuotaReached", tr, err)
			}
			r.Close()
		}
	})
	t.Run("default policy", func(t *testing.T) {
		pol, err := policy.New(policy.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s := startOurs(t, ourOpts{policy: pol})
		r, err := Allocate(ctx, Config{Server: s.udp.String(), Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		peer := netip.MustParseAddrPort("127.0.0.1:9")
		_, err = r.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(peer))
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("WriteTo %v: %v, want ErrForbidden", peer, err)
		}
		if _, ok := errors.AsType[*net.OpError](err); !ok {
			t.Errorf("WriteTo error %T, want *net.OpError", err)
		}
		if err := r.CreatePermission(ctx, peer.Addr()); !errors.Is(err, ErrForbidden) {
			t.Errorf("CreatePermission %v: %v, want ErrForbidden", peer.Addr(), err)
		}
		tr, err := AllocateTCP(ctx, Config{Server: s.tcp.String(), Username: "w", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		_, err = tr.Dial(ctx, peer)
		if se, ok := errors.AsType[*stun.Error](err); !errors.Is(err, ErrForbidden) || !ok || se.Code != stun.CodeForbidden {
			t.Errorf("Dial %v: %v, want ErrForbidden with the 403 *stun.Error", peer, err)
		}
		if err := tr.CreatePermission(ctx, peer.Addr()); !errors.Is(err, ErrForbidden) {
			t.Errorf("TCP CreatePermission %v: %v, want ErrForbidden", peer.Addr(), err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		s := startOurs(t, ourOpts{})
		for _, tr := range []Transport{UDP, TCP} {
			server := s.udp
			if tr == TCP {
				server = s.tcp
			}
			_, err := Allocate(ctx, Config{Server: server.String(), Transport: tr, Username: "u", Password: "wrong"})
			if se, ok := errors.AsType[*stun.Error](err); !ok || se.Code != stun.CodeUnauthorized {
				t.Errorf("%s: %v, want a 401 *stun.Error", tr, err)
			}
		}
	})
	t.Run("no connection", func(t *testing.T) {
		s := startOurs(t, ourOpts{})
		tr, err := AllocateTCP(ctx, Config{Server: s.tcp.String(), Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		// A port nobody listens on: the server's connect fails (447).
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		closed := l.Addr().(*net.TCPAddr).AddrPort()
		l.Close()
		if _, err := tr.Dial(ctx, closed); !errors.Is(err, ErrConnectFailed) {
			t.Errorf("Dial to a closed port: %v, want ErrConnectFailed", err)
		}
	})
}

func requireIPv6(t *testing.T) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no ::1 on this machine: %v", err)
	}
	c.Close()
}
