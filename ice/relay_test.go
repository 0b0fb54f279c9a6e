package ice

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// turnServer starts icebreaker's TURN server in process on 127.0.0.1 (UDP,
// TCP and TLS with a self-signed certificate that clientTLS trusts), with
// the user u:p, relaying on 127.0.0.1 to loopback peers. Cleanup stops it.
func turnServer(t testing.TB) (udp, tcp, tlsAddr netip.AddrPort, clientTLS *tls.Config) {
	t.Helper()
	auth, err := turnauth.New(turnauth.Config{Realm: "ice.test", Users: turnauth.StaticUsers{"u": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := turnserver.New(turnserver.Config{Auth: auth, Policy: pol, RelayIPv4: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	cert := testutil.SelfSignedCert(t)
	ss, err := stunserver.Listen(stunserver.Config{
		UDP: netip.AddrPortFrom(lo, 0), TCP: netip.AddrPortFrom(lo, 0), TLS: netip.AddrPortFrom(lo, 0),
		TLSConfig: cert.Server, UDPSockets: 1, Handler: ts,
	})
	if err != nil {
		ts.Close()
		t.Fatal(err)
	}
	for _, ep := range ss.Addrs() {
		switch ep.Network {
		case "udp":
			udp = ep.Addr
		case "tcp":
			tcp = ep.Addr
		case "tls":
			tlsAddr = ep.Addr
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
	// One allocation starts the server's lazily started goroutines, so
	// that the leak checks of the tests count them as before.
	r, err := turnclient.Allocate(t.Context(), turnclient.Config{Server: udp.String(), Username: "u", Password: "p"})
	if err != nil {
		t.Fatalf("the TURN server does not allocate: %v", err)
	}
	r.Close()
	return udp, tcp, tlsAddr, cert.Client
}

func TestTURNServerValidate(t *testing.T) {
	good := netip.MustParseAddrPort("127.0.0.1:3478")
	for _, c := range []struct {
		gc GatherConfig
		ok bool
	}{
		{GatherConfig{TURNServers: []TURNServer{{Addr: good, Username: "u", Password: "p"}}}, true},
		{GatherConfig{TURNServers: []TURNServer{{Addr: good, Secret: "s"}}, RelayOnly: true}, true},
		{GatherConfig{TURNServers: []TURNServer{{Addr: good}}}, false},
		{GatherConfig{TURNServers: []TURNServer{{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Secret: "s"}}}, false},
		{GatherConfig{TURNServers: []TURNServer{{Secret: "s"}}}, false},
		{GatherConfig{RelayOnly: true}, false},
		{GatherConfig{TURNTimeout: -1}, false},
	} {
		if err := c.gc.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate = %v, want ok %v", c.gc, err, c.ok)
		}
	}
}

// TestAgentsConnectThroughRelay connects an agent with only a relayed
// candidate, over UDP, TCP and TLS to the server, to one with a host
// candidate: the selected pair is relayed on its side and data flows both
// ways through the TURN server.
func TestAgentsConnectThroughRelay(t *testing.T) {
	udp, tcp, tlsAddr, clientTLS := turnServer(t)
	for _, tc := range []struct {
		name      string
		addr      netip.AddrPort
		transport turnclient.Transport
	}{{"udp", udp, turnclient.UDP}, {"tcp", tcp, turnclient.TCP}, {"tls", tlsAddr, turnclient.TLS}} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			gA := loopbackOnly()
			gA.RelayOnly = true
			gA.TURNServers = []TURNServer{{Addr: tc.addr, Transport: tc.transport, Username: "u", Password: "p"}}
			if tc.transport == turnclient.TLS {
				gA.TURNServers[0].TLSConfig = clientTLS
			}
			var trickled []Candidate
			gA.Trickle = func(c Candidate, end bool) {
				if !end {
					trickled = append(trickled, c)
				}
			}
			a, b, ca, cb := connectPair(t, AgentConfig{Gather: gA}, AgentConfig{Gather: loopbackOnly()})
			if len(trickled) != 1 {
				t.Fatalf("trickled %v, want one relayed candidate", trickled)
			}
			rc := trickled[0]
			if rc.Type != TypeRelay || rc.Base != rc.Addr || !rc.Related.IsValid() ||
				rc.Priority != Priority(TypeRelay.Preference(), MaxLocalPreference, 1) || rc.Priority>>24 != 0 {
				t.Fatalf("relayed candidate %v", &rc)
			}
			pa, _ := a.SelectedPair()
			pb, _ := b.SelectedPair()
			if pa.Local.Type != TypeRelay || pa.Local.Addr != rc.Addr || pb.Remote.Addr != rc.Addr {
				t.Fatalf("selected A %v, B %v; want A's relayed candidate", &pa, &pb)
			}
			if ca.LocalAddr().String() != rc.Addr.String() {
				t.Fatalf("A's LocalAddr %v, want %v", ca.LocalAddr(), rc.Addr)
			}
			buf := make([]byte, 1500)
			for i, dir := range []struct{ from, to net.Conn }{{ca, cb}, {cb, ca}, {ca, cb}, {cb, ca}} {
				msg := []byte{'m', byte('0' + i)}
				if _, err := dir.from.Write(msg); err != nil {
					t.Fatal(err)
				}
				dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := dir.to.Read(buf)
				if err != nil || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
				}
			}
			a.Close()
			b.Close()
			checkGoroutines(t, base)
		})
	}
}

// TestGatherTURNFailureIsNoCandidate: a TURN server that refuses the
// credentials yields no candidate and no error, beside the host one, and
// AgentStats.GatherFailures says which server failed and why; with
// RelayOnly, Gather's error wraps ErrNoCandidates and names the server.
func TestGatherTURNFailureIsNoCandidate(t *testing.T) {
	udp, _, _, _ := turnServer(t)
	gc := loopbackOnly()
	gc.TURNServers = []TURNServer{{Addr: udp, Username: "u", Password: "wrong"}}
	a, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cands, err := a.Gather(t.Context())
	if err != nil || len(cands) != 1 || cands[0].Type != TypeHost {
		t.Fatalf("Gather: %v, %v; want the host candidate alone", cands, err)
	}
	uri := "turn:" + udp.String() + "?transport=udp"
	fails := a.Stats().GatherFailures
	var se *stun.Error
	if len(fails) != 1 || fails[0].URI != uri || fails[0].Op != "allocate" || fails[0].Base.IsValid() ||
		!errors.As(fails[0].Err, &se) || se.Code != 401 {
		t.Fatalf("GatherFailures %+v, want %s failing with a 401", fails, uri)
	}

	gc.RelayOnly = true
	b, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cands, err = b.Gather(t.Context())
	if !errors.Is(err, ErrNoCandidates) || !strings.Contains(err.Error(), uri) || strings.Contains(err.Error(), "host address") {
		t.Fatalf("relay-only Gather: %v, %v; want ErrNoCandidates naming %s", cands, err, uri)
	}
	if fails := b.Stats().GatherFailures; len(fails) != 1 || fails[0].URI != uri {
		t.Fatalf("relay-only GatherFailures %+v", fails)
	}
}

// TestGatherSTUNFailure: a STUN server that does not answer yields no
// candidate and no error, and AgentStats.GatherFailures has its timeout,
// with the host socket the Binding went from.
func TestGatherSTUNFailure(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	server := silent.LocalAddr().(*net.UDPAddr).AddrPort()
	gc := loopbackOnly()
	gc.STUNServers = []netip.AddrPort{server}
	gc.STUNTimeout = 200 * time.Millisecond
	a, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cands, err := a.Gather(t.Context())
	if err != nil || len(cands) != 1 {
		t.Fatalf("Gather: %v, %v; want the host candidate alone", cands, err)
	}
	fails := a.Stats().GatherFailures
	if len(fails) != 1 || fails[0].URI != "stun:"+server.String() || fails[0].Op != "binding" ||
		fails[0].Base != cands[0].Base || !errors.Is(fails[0].Err, stunclient.ErrTimeout) {
		t.Fatalf("GatherFailures %+v, want a Binding timeout from %v", fails, cands[0].Base)
	}
}

func TestTURNServerURI(t *testing.T) {
	for _, tc := range []struct {
		s    TURNServer
		want string
	}{
		{TURNServer{Addr: netip.MustParseAddrPort("192.0.2.1:3478")}, "turn:192.0.2.1:3478?transport=udp"},
		{TURNServer{Addr: netip.MustParseAddrPort("[2001:db8::1]:3478"), Transport: turnclient.TCP}, "turn:[2001:db8::1]:3478?transport=tcp"},
		{TURNServer{Addr: netip.MustParseAddrPort("192.0.2.1:5349"), Transport: turnclient.TLS}, "turns:192.0.2.1:5349?transport=tcp"},
	} {
		if got := tc.s.URI(); got != tc.want {
			t.Errorf("URI() = %q, want %q", got, tc.want)
		}
	}
}

// TestWriteThenCloseOnRelay: what the application wrote on a relayed pair
// just before Close reaches the peer: the Agent's Close deletes the
// allocation (a Refresh with LIFETIME 0) right after, and the TURN server
// relays the data first (a QUIC CONNECTION_CLOSE written just before
// Close is how the peer learns that the connection ended).
func TestWriteThenCloseOnRelay(t *testing.T) {
	udp, _, _, _ := turnServer(t)
	base := runtime.NumGoroutine()
	gA := loopbackOnly()
	gA.RelayOnly = true
	gA.TURNServers = []TURNServer{{Addr: udp, Username: "u", Password: "p"}}
	a, b, ca, cb := connectPair(t, AgentConfig{Gather: gA}, AgentConfig{Gather: loopbackOnly()})
	const n = 40
	for i := range n {
		if _, err := ca.Write([]byte{'m', byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	buf := make([]byte, 1500)
	cb.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		k, err := cb.Read(buf)
		if err != nil || k != 2 || buf[1] != byte(i) {
			t.Fatalf("packet %d of %d: %q, %v", i, n, buf[:k], err)
		}
	}
	b.Close()
	checkGoroutines(t, base)
}
