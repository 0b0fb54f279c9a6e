package turnserver

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// The attacks of project issue 13, each as it was reproduced, scaled down
// where a flood only has to cross a bound. bench/turn/attack runs them at
// full size and measures what they cost.

// loopPeer returns the i-th loopback peer address 127.1.x.y:9 (the
// permission tests send nothing to it).
func loopPeer(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 9)
}

// TestPermissionCap: CreatePermission with many peers per request no
// longer grows an allocation's permissions without bound: past
// Quotas.PermissionsPerAllocation the request gets 508 and installs
// nothing; refreshing held permissions still works, and a peer packet
// flood at the cap costs one lookup a packet (TestPermittedAtCapNoAllocs).
func TestPermissionCap(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	perm := func(from, n int) *stun.Message {
		var attrs []attrFn
		for i := from; i < from+n; i++ {
			attrs = append(attrs, peerAttr(loopPeer(i)))
		}
		return c.do(stun.MethodCreatePermission, attrs...)
	}
	// The flood of the issue: 300 peers a request, over and over.
	checkCode(t, perm(0, 300), stun.CodeInsufficientCapacity)
	n := 0
	for n+100 <= DefaultPermissionsPerAllocation {
		c.checkOK(perm(n, 100))
		n += 100
	}
	c.checkOK(perm(n, DefaultPermissionsPerAllocation-n))
	checkCode(t, perm(DefaultPermissionsPerAllocation, 1), stun.CodeInsufficientCapacity)
	// All or none: one new peer among held ones is refused too.
	checkCode(t, perm(DefaultPermissionsPerAllocation-5, 6), stun.CodeInsufficientCapacity)
	c.checkOK(perm(0, 100)) // refreshing is not growing
	checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x4000), peerAttr(loopPeer(1000))), stun.CodeInsufficientCapacity)
	c.bind(0x4001, loopPeer(3)) // a held permission binds
	st := e.turn.Stats()
	if st.Permissions != DefaultPermissionsPerAllocation || st.RefusedPermissions != 4 {
		t.Errorf("Permissions %d, RefusedPermissions %d; want %d and 4", st.Permissions, st.RefusedPermissions, DefaultPermissionsPerAllocation)
	}
	// The cap is configurable; negative is unlimited.
	e2 := newEnv(t, func(c *Config) { c.Quotas.PermissionsPerAllocation = 2 })
	c2 := dialClient(t, "udp", e2.udp, "alice")
	c2.allocate()
	c2.permit(loopPeer(1), loopPeer(2))
	checkCode(t, c2.do(stun.MethodCreatePermission, peerAttr(loopPeer(3))), stun.CodeInsufficientCapacity)

	// Junk from an unpermitted peer at the cap is dropped and counted.
	p := newPeer(t, loop4)
	relayed := dialClient(t, "udp", e.udp, "bob").allocate()
	for range 100 {
		p.sendTo(relayed, []byte("junk"))
	}
	deadline := time.Now().Add(ioWait)
	for e.turn.Stats().DroppedNoPermission < 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling a counter
	}
	if got := e.turn.Stats().DroppedNoPermission; got != 100 {
		t.Errorf("DroppedNoPermission = %d, want 100", got)
	}
}

// TestPermittedAtCapNoAllocs: the per-packet permission and channel checks
// allocate nothing at the caps, hit or miss.
func TestPermittedAtCapNoAllocs(t *testing.T) {
	a := &allocation{}
	a.peers.Store(emptyPeers)
	var ips []netip.Addr
	for i := range DefaultPermissionsPerAllocation {
		ips = append(ips, loopPeer(i).Addr())
	}
	if a.permit(ips, 1, DefaultPermissionsPerAllocation) != permitOK {
		t.Fatal("permit at the cap refused")
	}
	// All 4096 channels, built at once (binding them one by one costs a
	// rebuilt index each).
	pt := a.peers.Load()
	full := &peerTable{perms: pt.perms}
	for i := range 4096 {
		full.chans = append(full.chans, channel{num: uint16(0x4000 + i), peer: netip.AddrPortFrom(ips[i%len(ips)], uint16(1000+i)), expires: 1})
	}
	full.index(pt)
	a.peers.Store(full)
	// Refreshing a binding at the cap shares the indexes.
	if r := a.bind(0x4005, netip.AddrPortFrom(ips[5], 1005), 2, 2, DefaultPermissionsPerAllocation); r != bindOK {
		t.Fatalf("refresh bind: %v", r)
	}
	if a.peers.Load().numIdx == nil || len(a.peers.Load().numIdx) != 4096 {
		t.Fatal("index lost")
	}
	pt = a.peers.Load()
	hit, miss := ips[77], netip.MustParseAddr("127.9.9.9")
	if !pt.permitted(hit) || pt.permitted(miss) {
		t.Fatal("permitted is wrong at the cap")
	}
	if num, ok := pt.channelOf(netip.AddrPortFrom(ips[5], 1005)); !ok || num != 0x4005 {
		t.Fatalf("channelOf = %#x %v", num, ok)
	}
	if peer, ok := pt.peerOf(0x4fff); !ok || peer.Port() != 1000+4095 {
		t.Fatalf("peerOf = %v %v", peer, ok)
	}
	if n := testing.AllocsPerRun(1000, func() {
		pt.permitted(hit)
		pt.permitted(miss)
		pt.channelOf(netip.AddrPortFrom(hit, 1))
		pt.peerOf(0x4123)
	}); n != 0 {
		t.Errorf("%v allocations per packet check", n)
	}
}

// BenchmarkPermitted measures the per-packet permission check by table
// size: a scan below indexMin, a map lookup above.
func BenchmarkPermitted(b *testing.B) {
	for _, n := range []int{1, 8, 16, 64, 128} {
		a := &allocation{}
		a.peers.Store(emptyPeers)
		var ips []netip.Addr
		for i := range n {
			ips = append(ips, loopPeer(i).Addr())
		}
		a.permit(ips, 1, 0)
		pt := a.peers.Load()
		miss := netip.MustParseAddr("127.9.9.9")
		b.Run("miss/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pt.permitted(miss)
			}
		})
	}
}

// TestNonceReplayFromAnotherPort: a signed Allocate captured from alice
// and replayed from another port of her IP address gets 438 (it used to
// create an allocation under her name).
func TestNonceReplayFromAnotherPort(t *testing.T) {
	e := newEnv(t, nil)
	alice := dialClient(t, "udp", e.udp, "alice")
	alice.challenge()
	id := stun.NewTransactionID()
	signed := alice.build(stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, id, true, transport(turn.ProtoUDP))
	alice.checkOK(alice.roundTrip(signed, id))
	mallory := dialClient(t, "udp", e.udp, "alice")
	checkCode(t, mallory.roundTrip(signed, id), stun.CodeStaleNonce)
	if st := e.turn.Stats(); st.Allocations != 1 || st.AuthStaleNonce != 1 {
		t.Errorf("Allocations %d, AuthStaleNonce %d; want 1 and 1", st.Allocations, st.AuthStaleNonce)
	}
}

// TestRefreshZeroReplay: alice deletes her allocation with Refresh
// LIFETIME 0 and allocates again on the same 5-tuple; the captured
// Refresh, replayed, gets 438 and her new allocation stays (it used to
// delete it). Her own first request after the re-Allocate costs one 438.
func TestRefreshZeroReplay(t *testing.T) {
	e := newEnv(t, nil)
	alice := dialClient(t, "udp", e.udp, "alice")
	alice.allocate()
	e.clock.Advance(time.Minute) // the call
	id := stun.NewTransactionID()
	refresh0 := alice.build(stun.Type{Method: stun.MethodRefresh, Class: stun.ClassRequest}, id, true, lifetime(0))
	alice.checkOK(alice.roundTrip(refresh0, id))
	e.clock.Advance(time.Second)
	relayed := alice.allocate() // 438 once, then a fresh nonce
	checkCode(t, alice.roundTrip(refresh0, id), stun.CodeStaleNonce)
	st := e.turn.Stats()
	if st.Allocations != 1 || st.NonceReplays != 2 {
		t.Errorf("Allocations %d, NonceReplays %d; want 1 and 2 (alice's own stale nonce, the replay)", st.Allocations, st.NonceReplays)
	}
	// The allocation still relays.
	p := newPeer(t, loop4)
	alice.permit(p.addr())
	alice.send(p.addr(), []byte("still here"))
	if got, from := p.recv(); string(got) != "still here" || from != relayed {
		t.Errorf("peer got %q from %v", got, from)
	}
}

// TestReservationQuota: EVEN-PORT reservations count against the user's
// allocations, so Allocate R=1 then Refresh 0 in a loop cannot hold
// ports beyond the quota and starve another user.
func TestReservationQuota(t *testing.T) {
	lo := freeUDPPort(t) &^ 1
	e := newEnv(t, func(c *Config) {
		c.Quotas.AllocationsPerUser = 3
		c.PortRange = PortRange{lo, lo + 11} // six even/odd pairs
	})
	refused := 0
	for range 10 {
		c := dialClient(t, "udp", e.udp, "alice")
		m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP), evenPort(true))
		if m.Type.Class == stun.ClassError {
			checkCode(t, m, stun.CodeAllocationQuotaReached)
			refused++
			continue
		}
		c.checkOK(c.do(stun.MethodRefresh, lifetime(0)))
	}
	st := e.turn.Stats()
	if refused == 0 || st.Reservations > 3 || st.RefusedAllocationsPerUser != uint64(refused) {
		t.Errorf("refused %d, Reservations %d, RefusedAllocationsPerUser %d", refused, st.Reservations, st.RefusedAllocationsPerUser)
	}
	// bob still gets a port.
	dialClient(t, "udp", e.udp, "bob").allocate()
	// A reservation redeemed by its own user at the quota takes its slot.
	e2 := newEnv(t, func(c *Config) { c.Quotas.AllocationsPerUser = 2 })
	c := dialClient(t, "udp", e2.udp, "alice")
	m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP), evenPort(true))
	c.checkOK(m)
	v, _ := m.Get(stun.AttrReservationToken)
	tok, _ := turn.ParseReservationToken(v)
	checkCode(t, dialClient(t, "udp", e2.udp, "alice").do(stun.MethodAllocate, transport(turn.ProtoUDP)), stun.CodeAllocationQuotaReached)
	dialClient(t, "udp", e2.udp, "alice").allocate(token(tok))
	// Expiry returns the slot.
	c.checkOK(c.do(stun.MethodRefresh, lifetime(0)))
	m = c.do(stun.MethodAllocate, transport(turn.ProtoUDP), evenPort(true))
	checkCode(t, m, stun.CodeAllocationQuotaReached) // 1 held + this + its reservation > 2
	m = dialClient(t, "udp", e2.udp, "alice").do(stun.MethodAllocate, transport(turn.ProtoUDP))
	if m.Type.Class != stun.ClassSuccess {
		t.Fatalf("allocation within the quota refused: %v", m.Type)
	}
}

// TestRESTCallOutlivesCredential: a REST credential valid for 300 s
// creates an allocation; after it expires, Refresh, CreatePermission and
// ChannelBind still work and data still flows (browsers and coturn check
// the expiry at Allocate only), while a new Allocate gets 401.
func TestRESTCallOutlivesCredential(t *testing.T) {
	e := restEnv(t, nil)
	user, pass := turn.RESTCredentials(restSecret, "carol", e.clock.Now().Add(300*time.Second))
	c := dialClient(t, "udp", e.udp, "alice")
	c.user, c.pass = user, pass
	relayed := c.allocate(lifetime(time.Hour))
	p := newPeer(t, loop4)
	c.permit(p.addr())
	for range 4 { // 20 minutes: the call goes on, refreshed
		e.clock.Advance(5 * time.Minute)
		e.turn.sweep()
		c.checkOK(c.do(stun.MethodRefresh, lifetime(time.Hour)))
		c.permit(p.addr())
	}
	c.bind(0x4000, p.addr())
	c.sendChannel(0x4000, []byte("after expiry"))
	if got, from := p.recv(); string(got) != "after expiry" || from != relayed {
		t.Errorf("peer got %q from %v", got, from)
	}
	// A new allocation needs a valid credential.
	late := dialClient(t, "udp", e.udp, "alice")
	late.user, late.pass = user, pass
	m := late.do(stun.MethodAllocate, transport(turn.ProtoUDP))
	checkCode(t, m, stun.CodeUnauthorized)
	if _, reason, _ := m.ErrorCode(); string(reason) != "Credentials Expired" {
		t.Errorf("reason %q", reason)
	}
	if st := e.turn.Stats(); st.AuthExpiredREST != 1 || st.Allocations != 1 {
		t.Errorf("AuthExpiredREST %d, Allocations %d", st.AuthExpiredREST, st.Allocations)
	}
}

// String returns what was logged.
func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestAuthFailuresSeen: wrong passwords and unknown users are counted by
// reason and logged at info with user and client, one line per source and
// reason per interval with the count of what was suppressed.
func TestAuthFailuresSeen(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	wrong := dialClient(t, "udp", e.udp, "alice")
	wrong.pass = "guess"
	for range 50 {
		checkCode(t, wrong.do(stun.MethodAllocate, transport(turn.ProtoUDP)), stun.CodeUnauthorized)
	}
	nobody := dialClient(t, "udp", e.udp, "alice")
	nobody.user = "mallory"
	for range 50 {
		checkCode(t, nobody.do(stun.MethodAllocate, transport(turn.ProtoUDP)), stun.CodeUnauthorized)
	}
	st := e.turn.Stats()
	if st.AuthBadIntegrity != 50 || st.AuthUnknownUser != 50 {
		t.Errorf("AuthBadIntegrity %d, AuthUnknownUser %d; want 50 and 50", st.AuthBadIntegrity, st.AuthUnknownUser)
	}
	out := logs.String()
	if n := strings.Count(out, "turn authentication failed"); n != 2 {
		t.Errorf("%d log lines, want 2 (one per reason):\n%s", n, out)
	}
	for _, want := range []string{"reason=bad_integrity", "reason=unknown_user", "user=mallory", "user=alice", "client=127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	e.clock.Advance(time.Minute)
	wrong.do(stun.MethodAllocate, transport(turn.ProtoUDP))
	if out := logs.String(); !strings.Contains(out, "suppressed=49") {
		t.Errorf("no suppressed count after the interval:\n%s", out)
	}
}

// TestReflection measures what an unauthenticated 20-byte request of each
// kind gets back (logged as the amplification ratio) and checks the
// per-source limit on error answers: past it, no answer at all.
func TestReflection(t *testing.T) {
	clock := newFakeClock()
	lim, err := iplimit.New(iplimit.Config{Rate: 10, Burst: 20, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.ErrorLimiter = lim })
	c := dialClient(t, "udp", e.udp, "alice")
	for _, method := range []stun.Method{stun.MethodBinding, stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission,
		stun.MethodChannelBind, stun.MethodConnect, stun.MethodConnectionBind, stun.Method(0x0FF)} {
		req := stun.AppendHeader(nil, stun.Type{Method: method, Class: stun.ClassRequest}, stun.NewTransactionID())
		c.write(req)
		resp, err := c.read(ioWait)
		if err != nil {
			t.Fatalf("%v: %v", method, err)
		}
		t.Logf("%-16v %d-byte request, %3d-byte answer: %.1fx", method, len(req), len(resp), float64(len(resp))/float64(len(req)))
		if method == stun.MethodAllocate && len(resp) > 108 {
			t.Errorf("401 of %d bytes, want at most 108 (no reason phrase, no FINGERPRINT)", len(resp))
		}
	}
	// Past the burst, error answers stop; the count says so.
	answered := 0
	for range 100 {
		req := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, stun.NewTransactionID())
		c.write(req)
	}
	// A Binding request after the flood proves the flood was processed
	// (the listener answers in order) and is not limited.
	id := stun.NewTransactionID()
	c.write(stun.AppendHeader(nil, stun.Type{Method: stun.MethodBinding, Class: stun.ClassRequest}, id))
	for {
		pkt, err := c.read(ioWait)
		if err != nil {
			t.Fatal(err)
		}
		var m stun.Message
		if m.Parse(pkt) == nil && m.TransactionID == id {
			break
		}
		answered++
	}
	st := e.turn.Stats()
	if answered+int(st.ErrorsRateLimited) != 100 || answered > 20 {
		t.Errorf("answered %d, rate-limited %d of 100", answered, st.ErrorsRateLimited)
	}
}

// TestGraveyardCollisionSparesAllocations: the deletion times are kept in
// a table indexed by a hash of the 5-tuple, so another client's deletion
// can land in the slot of alice's 5-tuple. While alice holds an
// allocation, that must not refuse her requests: her Refresh with
// LIFETIME 0, signed with the nonce she allocated with, deletes it. (It
// used to get 438, and under thousands of deletions a second 438 after
// the fresh nonce, so that the allocation outlived the client's delete.)
func TestGraveyardCollisionSparesAllocations(t *testing.T) {
	e := newEnv(t, nil)
	// Two client ports of 127.0.0.1 whose 5-tuples share a slot.
	ip := netip.MustParseAddr("127.0.0.1")
	keyOf := func(port uint16) fiveTuple {
		return fiveTuple{client: netip.AddrPortFrom(ip, port), server: e.udp, transport: transportUDP}
	}
	var conns []*net.UDPConn
	seen := map[*atomic.Int64]*net.UDPConn{} // slot: the first open port in it
	for port := uint16(20000); port < 60000 && len(conns) < 2; port++ {
		slot := e.turn.graves.slot(keyOf(port))
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)), net.UDPAddrFromAddrPort(e.udp))
		if err != nil {
			continue // the port is taken
		}
		t.Cleanup(func() { c.Close() })
		if first := seen[slot]; first != nil {
			conns = append(conns, first, c)
		} else {
			seen[slot] = c
		}
	}
	if len(conns) != 2 {
		t.Fatal("no two free client ports whose 5-tuples share a graveyard slot")
	}
	alice := &client{t: t, c: conns[0], user: "alice", pass: users["alice"]}
	bob := &client{t: t, c: conns[1], user: "bob", pass: users["bob"]}

	alice.allocate()
	if e.turn.allocs.get(keyOf(alice.local().Port())) == nil {
		t.Fatal("alice's allocation is not under the 5-tuple the test computed")
	}
	e.clock.Advance(time.Second)
	bob.allocate()
	bob.checkOK(bob.do(stun.MethodRefresh, lifetime(0))) // a deletion in alice's slot
	e.clock.Advance(time.Second)

	id := stun.NewTransactionID()
	alice.checkOK(alice.roundTrip(alice.build(stun.Type{Method: stun.MethodRefresh, Class: stun.ClassRequest}, id, true, lifetime(0)), id))
	if st := e.turn.Stats(); st.Allocations != 0 || st.NonceReplays != 0 {
		t.Errorf("Allocations %d, NonceReplays %d; want 0 and 0", st.Allocations, st.NonceReplays)
	}
}
