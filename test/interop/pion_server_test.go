package interop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/pion/turn/v5"
)

// pionRealm is the realm of the in-process pion/turn server.
const pionRealm = "pion.interop.test"

// pionServer is a pion/turn v5 server running in the test process.
type pionServer struct {
	srv      *turn.Server
	udp, tcp netip.AddrPort
}

// startPionServer starts a pion/turn v5 server with a UDP and a TCP
// listener on free ports of 127.0.0.1, relaying from 127.0.0.1. It knows
// the user turnUser:turnPass and TURN REST credentials under restSecret,
// and grants permissions for loopback peers only. Cleanup closes it.
func startPionServer(t *testing.T) *pionServer {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	rest := turn.LongTermTURNRESTAuthHandler(restSecret, nil)
	loopbackOnly := func(_ net.Addr, peer net.IP) bool { return peer.IsLoopback() }
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: pionRealm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if ra.Username == turnUser {
				return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, turnPass), true
			}
			if strings.Contains(ra.Username, ":") {
				return rest(ra)
			}
			return "", nil, false
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1),
				Address:      "127.0.0.1",
			},
			PermissionHandler: loopbackOnly,
		}},
		ListenerConfigs: []turn.ListenerConfig{{
			Listener: ln,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1),
				Address:      "127.0.0.1",
			},
			PermissionHandler: loopbackOnly,
		}},
	})
	if err != nil {
		pc.Close()
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing the pion server: %v", err)
		}
	})
	return &pionServer{
		srv: srv,
		udp: pc.LocalAddr().(*net.UDPAddr).AddrPort(),
		tcp: ln.Addr().(*net.TCPAddr).AddrPort(),
	}
}

// checkNoGoroutineLeak fails t if, at its end, more goroutines run than
// at its start (after a bounded wait for exiting ones). It is only
// meaningful in a test that is not parallel: the parallel tests of the
// package are paused while it runs.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, before) })
}

// TestOurClientPionServer runs icebreaker's TURN client (package
// turnclient) against pion/turn v5's server, in process, over UDP and
// TCP, with long-term and TURN REST credentials: Allocate, datagrams to a
// UDP echo peer on 127.0.0.1 first in Send indications and then, once
// the client has bound a channel, as ChannelData (RFC 8656, Sections 10
// to 12), a permission pion refuses (403), and Close, which deletes the
// allocation (Section 7.3). The test is not parallel so that it can check
// that neither side leaves a goroutine behind.
func TestOurClientPionServer(t *testing.T) {
	checkNoGoroutineLeak(t)
	ps := startPionServer(t)
	for _, tc := range []struct {
		name string
		cfg  turnclient.Config
	}{
		{"udp", turnclient.Config{Server: ps.udp.String(), Username: turnUser, Password: turnPass}},
		{"tcp", turnclient.Config{Server: ps.tcp.String(), Transport: turnclient.TCP,
			Username: turnUser, Password: turnPass}},
		{"udp rest", turnclient.Config{Server: ps.udp.String(), Secret: restSecret, RESTUser: "alice",
			RESTTTL: time.Hour}},
		{"tcp rest", turnclient.Config{Server: ps.tcp.String(), Transport: turnclient.TCP,
			Secret: restSecret, RESTUser: "bob", RESTTTL: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) { testOurClientPion(t, ps, tc.cfg) })
	}
}

func testOurClientPion(t *testing.T, ps *pionServer, cfg turnclient.Config) {
	ctx := testContext(t)
	peer := startEchoPeer(t)
	loopback := netip.MustParseAddr("127.0.0.1")

	cfg.Software = "icebreaker interop test"
	relay, err := turnclient.Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()
	relayed := relay.Relayed()
	if len(relayed) != 1 || relayed[0].Addr() != loopback || relayed[0].Port() == 0 {
		t.Fatalf("relayed addresses %v, want one on 127.0.0.1", relayed)
	}
	if got := relay.LocalAddr().String(); got != relayed[0].String() {
		t.Errorf("LocalAddr %s, want the relayed address %s", got, relayed[0])
	}
	// RFC 8656, Section 7.3: the success response carries
	// XOR-MAPPED-ADDRESS; on loopback, the client's own address.
	if m := relay.Mapped(); m.Addr() != loopback || m.Port() == 0 {
		t.Errorf("mapped address %v, want one on 127.0.0.1", m)
	}
	if relay.Lifetime() <= 0 {
		t.Errorf("lifetime %v, want a positive one", relay.Lifetime())
	}
	if n := ps.srv.AllocationCount(); n != 1 {
		t.Errorf("pion counts %d allocations, want 1", n)
	}

	// pion's permission handler admits loopback peers only: a write to
	// TEST-NET-1 (RFC 5737) is refused with 403 before anything is
	// relayed.
	forbidden := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}
	if _, err := relay.WriteTo([]byte("refused"), forbidden); !errors.Is(err, turnclient.ErrForbidden) {
		t.Errorf("WriteTo(%v) = %v, want an error wrapping ErrForbidden", forbidden, err)
	}

	before, after := ourRoundTrips(t, relay, peer.addr())
	ch := relay.Channel(peer.addr())
	st := relay.Stats()
	t.Logf("%d round trips in Send/Data indications, then %d on channel %#x; stats %+v",
		before, after, ch, st)
	// RFC 8656, Section 12: channel numbers 0x4000 through 0x4FFF.
	if ch < 0x4000 || ch > 0x4fff {
		t.Errorf("channel %#x outside 0x4000-0x4FFF", ch)
	}
	switch {
	case st.SentIndications == 0 || st.RecvIndications == 0:
		t.Errorf("no datagram went in Send and Data indications: %+v", st)
	case st.SentChannelData < 3 || st.RecvChannelData == 0:
		t.Errorf("too few datagrams went as ChannelData: %+v", st)
	case st.Malformed != 0 || st.UnknownChannel != 0:
		t.Errorf("pion's server sent packets the client could not use: %+v", st)
	}

	// Everything reached the peer from the relayed address.
	if senders := peer.from(); len(senders) != 1 || senders[relayed[0]] == 0 {
		t.Errorf("echo peer heard from %v, want only the relayed address %v", senders, relayed[0])
	}

	// Close deletes the allocation (Refresh with LIFETIME 0, which pion
	// handles before it answers) and is idempotent.
	if err := relay.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := relay.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := ps.srv.AllocationCount(); n != 0 {
		t.Errorf("pion still counts %d allocations after Close", n)
	}
	if _, _, err := relay.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close = %v, want net.ErrClosed", err)
	}
	if _, err := relay.WriteTo([]byte("late"), net.UDPAddrFromAddrPort(peer.addr())); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Close = %v, want net.ErrClosed", err)
	}
}

// ourRoundTrips sends numbered datagrams to peer through relay and reads
// their echoes, resending one that does not come back within a second (at
// most three sends), until the relay has bound a channel to peer and
// three round trips have gone over it (at most 50 round trips). It
// returns how many round trips went before the channel was bound and
// after.
func ourRoundTrips(t *testing.T, relay *turnclient.Relay, peer netip.AddrPort) (before, after int) {
	t.Helper()
	to := net.UDPAddrFromAddrPort(peer)
	buf := make([]byte, 1500)
	for i := 0; i < 50 && after < 3; i++ {
		bound := relay.Channel(peer) != 0
		msg := fmt.Appendf(nil, "icebreaker round trip %d", i)
		for sends := 1; ; sends++ {
			if _, err := relay.WriteTo(msg, to); err != nil {
				t.Fatalf("WriteTo(%v): %v", to, err)
			}
			if ourEchoed(t, relay, buf, msg, peer) {
				break
			}
			if sends == 3 {
				t.Fatalf("no echo of %q after %d sends; stats %+v", msg, sends, relay.Stats())
			}
		}
		if bound {
			after++
		} else {
			before++
		}
	}
	if after < 3 {
		t.Fatalf("no channel bound after %d round trips; stats %+v", before, relay.Stats())
	}
	return before, after
}

// ourEchoed reads from relay until msg comes back from peer (true) or a
// second passes (false). Other datagrams (late echoes of resent ones) are
// skipped.
func ourEchoed(t *testing.T, relay *turnclient.Relay, buf, msg []byte, peer netip.AddrPort) bool {
	t.Helper()
	relay.SetReadDeadline(time.Now().Add(time.Second))
	defer relay.SetReadDeadline(time.Time{})
	for {
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return false
			}
			t.Fatalf("ReadFrom: %v", err)
		}
		if string(buf[:n]) != string(msg) {
			continue
		}
		if got := from.String(); got != peer.String() {
			t.Errorf("echo from %s, want the peer %s", got, peer)
		}
		return true
	}
}
