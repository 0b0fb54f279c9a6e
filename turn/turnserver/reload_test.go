package turnserver

import (
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// TestSetAuth: after SetAuth with a new password, the allocation made
// under the old one still relays, new requests need the new password, and
// a user the new authenticator does not know can no longer refresh.
func TestSetAuth(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	p := newPeer(t, loop4)
	c.bind(0x4000, p.addr())

	auth, err := turnauth.New(turnauth.Config{Realm: realm, Users: turnauth.StaticUsers{"alice": "new"}})
	if err != nil {
		t.Fatal(err)
	}
	e.turn.SetAuth(auth)
	if n := e.turn.RevokeUsers(func(u string) bool { return u == "alice" }); n != 0 {
		t.Errorf("RevokeUsers revoked %d of alice's", n)
	}
	c.sendChannel(0x4000, []byte("still relayed"))
	if got, _ := p.recv(); string(got) != "still relayed" {
		t.Errorf("peer got %q", got)
	}
	checkCode(t, c.do(stun.MethodRefresh), stun.CodeUnauthorized) // old password
	c.pass = "new"
	c.checkOK(c.do(stun.MethodRefresh))
	if st := e.turn.Stats(); st.Allocations != 1 {
		t.Errorf("Allocations = %d, want 1", st.Allocations)
	}
}

// TestRevokeUsers: a deleted user's allocation lives on until its next
// Refresh, which fails authentication and ends it.
func TestRevokeUsers(t *testing.T) {
	e := newEnv(t, nil)
	bob := dialClient(t, "udp", e.udp, "bob")
	bob.allocate()
	dialClient(t, "udp", e.udp, "alice").allocate()

	auth, err := turnauth.New(turnauth.Config{Realm: realm, Users: turnauth.StaticUsers{"alice": "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	e.turn.SetAuth(auth)
	if n := e.turn.RevokeUsers(func(u string) bool { return u == "alice" }); n != 1 {
		t.Fatalf("RevokeUsers = %d, want 1 (bob's)", n)
	}
	ss := e.turn.Sessions("bob")
	if len(ss) != 1 || !ss[0].Revoked {
		t.Fatalf("bob's sessions %+v, want one revoked", ss)
	}
	checkCode(t, bob.do(stun.MethodRefresh), stun.CodeUnauthorized)
	if ss := e.turn.Sessions(""); len(ss) != 1 || ss[0].User != "alice" {
		t.Errorf("after bob's refresh: %+v, want only alice's", ss)
	}
}

// TestSetPolicy: a tightened policy removes the permissions and channels
// it now denies; the allowed ones stay and relay.
func TestSetPolicy(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	p1, p2 := newPeer(t, loop4), newPeer(t, netip.MustParseAddr("127.0.0.2"))
	c.bind(0x4000, p1.addr())
	c.bind(0x4001, p2.addr())

	tight := mustPolicy(policy.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if n := e.turn.SetPolicy(tight); n != 2 {
		t.Errorf("SetPolicy removed %d, want 2 (127.0.0.2's permission and channel)", n)
	}
	ss := e.turn.Sessions("")
	if len(ss) != 1 || len(ss[0].Permissions) != 1 || ss[0].Permissions[0] != loop4 || len(ss[0].Channels) != 1 {
		t.Fatalf("sessions %+v, want one permission and channel to 127.0.0.1", ss)
	}
	c.sendChannel(0x4000, []byte("allowed"))
	if got, _ := p1.recv(); string(got) != "allowed" {
		t.Errorf("peer 1 got %q", got)
	}
	checkCode(t, c.do(stun.MethodCreatePermission, peerAttr(p2.addr())), stun.CodeForbidden)
}

// TestSetQuotas: a lowered per-user limit refuses the next Allocate (486)
// and keeps the allocations already made; an invalid one is refused.
func TestSetQuotas(t *testing.T) {
	e := newEnv(t, nil)
	dialClient(t, "udp", e.udp, "alice").allocate()
	dialClient(t, "udp", e.udp, "alice").allocate()
	if err := e.turn.SetQuotas(Quotas{TotalAllocations: -1}); err == nil {
		t.Error("SetQuotas accepted a negative total")
	}
	if err := e.turn.SetQuotas(Quotas{AllocationsPerUser: 1}); err != nil {
		t.Fatal(err)
	}
	checkCode(t, dialClient(t, "udp", e.udp, "alice").do(stun.MethodAllocate, transport(17)), stun.CodeAllocationQuotaReached)
	if st := e.turn.Stats(); st.Allocations != 2 {
		t.Errorf("Allocations = %d, want 2", st.Allocations)
	}
}

// TestDrain: while draining, a new Allocate gets 300 with
// ALTERNATE-SERVER (or 508 without one), and existing allocations keep
// refreshing and relaying.
func TestDrain(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	e.turn.Drain(netip.AddrPort{})
	if !e.turn.Draining() {
		t.Fatal("Draining() = false")
	}
	checkCode(t, dialClient(t, "udp", e.udp, "bob").do(stun.MethodAllocate, transport(17)), stun.CodeInsufficientCapacity)

	alt := netip.MustParseAddrPort("192.0.2.7:3478")
	e.turn.Drain(alt)
	m := dialClient(t, "udp", e.udp, "bob").do(stun.MethodAllocate, transport(17))
	checkCode(t, m, stun.CodeTryAlternate)
	v, ok := m.Get(stun.AttrAlternateServer)
	if !ok {
		t.Fatal("300 without ALTERNATE-SERVER")
	}
	if got, err := stun.ParseAddress(v); err != nil || got != alt {
		t.Errorf("ALTERNATE-SERVER %v (%v), want %v", got, err, alt)
	}
	c.checkOK(c.do(stun.MethodRefresh))
	p := newPeer(t, loop4)
	c.bind(0x4000, p.addr())
	c.sendChannel(0x4000, []byte("draining"))
	if got, _ := p.recv(); string(got) != "draining" {
		t.Errorf("peer got %q", got)
	}
}

// TestSessionsKill: Sessions lists each allocation with its user,
// addresses, peers and traffic; KillSession and KillUser end them.
func TestSessionsKill(t *testing.T) {
	e := newEnv(t, nil)
	a1 := dialClient(t, "udp", e.udp, "alice")
	relayed := a1.allocate()
	dialClient(t, "udp", e.udp, "alice").allocate()
	dialClient(t, "tcp", e.tcp, "bob").allocate()
	p := newPeer(t, loop4)
	a1.bind(0x4000, p.addr())
	a1.sendChannel(0x4000, []byte("12345"))
	p.recv()

	// The relay counts a datagram after its batch went out, which may be
	// just after the peer got it: wait for the count, then check the rest.
	var ss []Session
	var s1 *Session
	waitFor(t, "the relayed datagram counted", func() bool {
		ss, s1 = e.turn.Sessions("alice"), nil
		for i := range ss {
			if ss[i].Client == a1.local() {
				s1 = &ss[i]
			}
		}
		return s1 != nil && s1.ToPeerPackets == 1
	})
	if len(ss) != 2 {
		t.Fatalf("alice has %d sessions, want 2", len(ss))
	}
	if s1.Transport != "udp" || s1.Server != e.udp || len(s1.Relayed) != 1 || s1.Relayed[0] != relayed.String() ||
		s1.ToPeerPackets != 1 || s1.ToPeerBytes != 5 || len(s1.Channels) != 1 || s1.Channels[0] != p.addr() {
		t.Errorf("session %+v", *s1)
	}
	if e.turn.KillSession("0000000000000000") {
		t.Error("KillSession of an unknown ID reported true")
	}
	if !e.turn.KillSession(s1.ID) {
		t.Fatal("KillSession failed")
	}
	checkCode(t, a1.do(stun.MethodRefresh), stun.CodeAllocationMismatch)
	if n := e.turn.KillUser("alice"); n != 1 {
		t.Errorf("KillUser(alice) = %d, want 1", n)
	}
	if ss := e.turn.Sessions(""); len(ss) != 1 || ss[0].User != "bob" || ss[0].Transport != "tcp" {
		t.Errorf("left: %+v, want bob's TCP allocation", ss)
	}
}
