package turnserver

import (
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/policy"
)

// TestAllocateRetransmission: an Allocate retransmitted with the same
// transaction ID gets the same success response; a new one on the same
// 5-tuple gets 437. RFC 8656, Section 7.2, step 2.
func TestAllocateRetransmission(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	first := c.allocate() // learns the nonce
	_ = first
	c2 := dialClient(t, "udp", e.udp, "alice")
	c2.challenge() // nonces are bound to the client's transport address
	id := stun.NewTransactionID()
	req := c2.build(stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, id, true, transport(turn.ProtoUDP), evenPort(true))
	m1 := c2.roundTrip(req, id)
	c2.checkOK(m1)
	m2 := c2.roundTrip(req, id)
	c2.checkOK(m2)
	for _, at := range []stun.AttrType{stun.AttrXORRelayedAddress, stun.AttrReservationToken, stun.AttrXORMappedAddress} {
		v1, _ := m1.Get(at)
		v2, _ := m2.Get(at)
		if string(v1) != string(v2) || v1 == nil {
			t.Errorf("%v differs: %x, %x", at, v1, v2)
		}
	}
	checkCode(t, c2.do(stun.MethodAllocate, transport(turn.ProtoUDP)), stun.CodeAllocationMismatch)
	if st := e.turn.Stats(); st.Allocations != 2 {
		t.Errorf("Allocations = %d, want 2", st.Allocations)
	}
}

// TestErrorCodes walks the error paths of RFC 8656 one by one, each on a
// fresh client (a fresh 5-tuple).
func TestErrorCodes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RelayIPv6 = netip.Addr{} })
	fresh := func() *client { return dialClient(t, "udp", e.udp, "alice") }
	withAlloc := func() *client {
		c := fresh()
		c.allocate()
		return c
	}
	p := newPeer(t, loop4).addr()
	p6 := netip.MustParseAddrPort("[2001:db8::1]:3478")
	tok := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}

	for _, tc := range []struct {
		name   string
		code   int
		method stun.Method
		c      func() *client
		attrs  []attrFn
	}{
		{"Allocate without REQUESTED-TRANSPORT", 400, stun.MethodAllocate, fresh, nil},
		{"malformed REQUESTED-TRANSPORT", 400, stun.MethodAllocate, fresh, []attrFn{raw(stun.AttrRequestedTransport, []byte{17})}},
		{"REQUESTED-TRANSPORT SCTP", 442, stun.MethodAllocate, fresh, []attrFn{transport(132)}},
		{"RESERVATION-TOKEN with EVEN-PORT", 400, stun.MethodAllocate, fresh, []attrFn{transport(17), token(tok), evenPort(false)}},
		{"RESERVATION-TOKEN with REQUESTED-ADDRESS-FAMILY", 400, stun.MethodAllocate, fresh, []attrFn{transport(17), token(tok), family(turn.FamilyIPv4)}},
		{"unknown RESERVATION-TOKEN", 508, stun.MethodAllocate, fresh, []attrFn{transport(17), token(tok)}},
		{"both address family attributes", 400, stun.MethodAllocate, fresh, []attrFn{transport(17), family(turn.FamilyIPv4), additional(turn.FamilyIPv6)}},
		{"ADDITIONAL-ADDRESS-FAMILY IPv4", 400, stun.MethodAllocate, fresh, []attrFn{transport(17), additional(turn.FamilyIPv4)}},
		{"REQUESTED-ADDRESS-FAMILY 3", 440, stun.MethodAllocate, fresh, []attrFn{transport(17), raw(stun.AttrRequestedAddressFamily, []byte{3, 0, 0, 0})}},
		{"IPv6 not served", 440, stun.MethodAllocate, fresh, []attrFn{transport(17), family(turn.FamilyIPv6)}},
		{"EVEN-PORT R with ADDITIONAL-ADDRESS-FAMILY", 400, stun.MethodAllocate, fresh, []attrFn{transport(17), evenPort(true), additional(turn.FamilyIPv6)}},
		{"malformed LIFETIME", 400, stun.MethodAllocate, fresh, []attrFn{transport(17), raw(stun.AttrLifetime, []byte{1})}},
		{"unknown comprehension-required attribute", 420, stun.MethodAllocate, fresh, []attrFn{transport(17), raw(0x7777, []byte{1, 2, 3, 4})}},
		{"Refresh without allocation", 437, stun.MethodRefresh, fresh, nil},
		{"Refresh with the other family", 443, stun.MethodRefresh, withAlloc, []attrFn{family(turn.FamilyIPv6)}},
		{"CreatePermission without allocation", 437, stun.MethodCreatePermission, fresh, []attrFn{peerAttr(p)}},
		{"CreatePermission without XOR-PEER-ADDRESS", 400, stun.MethodCreatePermission, withAlloc, nil},
		{"CreatePermission malformed peer", 400, stun.MethodCreatePermission, withAlloc, []attrFn{raw(stun.AttrXORPeerAddress, []byte{0, 1, 2})}},
		{"CreatePermission IPv6 peer on IPv4 relay", 443, stun.MethodCreatePermission, withAlloc, []attrFn{peerAttr(p), peerAttr(p6)}},
		{"ChannelBind without CHANNEL-NUMBER", 400, stun.MethodChannelBind, withAlloc, []attrFn{peerAttr(p)}},
		{"ChannelBind without XOR-PEER-ADDRESS", 400, stun.MethodChannelBind, withAlloc, []attrFn{channelAttr(0x4000)}},
		{"ChannelBind below range", 400, stun.MethodChannelBind, withAlloc, []attrFn{channelAttr(0x3fff), peerAttr(p)}},
		{"ChannelBind loose number not enabled", 400, stun.MethodChannelBind, withAlloc, []attrFn{channelAttr(0x5000), peerAttr(p)}},
		{"ChannelBind IPv6 peer", 443, stun.MethodChannelBind, withAlloc, []attrFn{channelAttr(0x4000), peerAttr(p6)}},
		{"ChannelBind without allocation", 437, stun.MethodChannelBind, fresh, []attrFn{channelAttr(0x4000), peerAttr(p)}},
		{"unsupported method Connect", 400, stun.MethodConnect, withAlloc, []attrFn{peerAttr(p)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c()
			m := c.do(tc.method, tc.attrs...)
			checkCode(t, m, tc.code)
			// Error responses to authenticated requests are signed.
			key, _ := stun.LongTermKey(stun.PasswordMD5, c.user, c.realm, c.pass)
			if err := m.CheckIntegrity(key); err != nil {
				t.Errorf("error response integrity: %v", err)
			}
			if tc.code == stun.CodeUnknownAttribute {
				v, _ := m.Get(stun.AttrUnknownAttributes)
				if got, _ := stun.ParseUnknownAttributes(nil, v); len(got) != 1 || got[0] != 0x7777 {
					t.Errorf("UNKNOWN-ATTRIBUTES %v", got)
				}
			}
		})
	}
	if st := e.turn.Stats(); st.Permissions != 0 || st.Channels != 0 {
		t.Errorf("a failed request left state behind: %+v", st)
	}
}

// TestAuthErrors: no credentials gets 401 with REALM and NONCE; a wrong
// password 401; a stale nonce 438 (handled by the client's retry); a
// request from another user on the allocation's 5-tuple 441.
func TestAuthErrors(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	id := stun.NewTransactionID()
	m := c.roundTrip(c.build(stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, id, false, transport(17)), id)
	checkCode(t, m, stun.CodeUnauthorized)
	if !m.Has(stun.AttrRealm) || !m.Has(stun.AttrNonce) || m.Has(stun.AttrMessageIntegrity) {
		t.Error("401 without REALM and NONCE, or signed")
	}

	bad := dialClient(t, "udp", e.udp, "alice")
	bad.pass = "wrong"
	checkCode(t, bad.do(stun.MethodAllocate, transport(17)), stun.CodeUnauthorized)

	c.allocate()
	// A nonce expires (turnauth's default 10 minutes): 438, then the
	// client retries with the fresh nonce and succeeds.
	old := c.nonce
	e.clock.Advance(11 * 60e9)
	c.checkOK(c.do(stun.MethodRefresh))
	if c.nonce == old {
		t.Error("no 438 with a fresh nonce after the nonce expired")
	}

	// bob on alice's 5-tuple.
	c.user, c.pass = "bob", users["bob"]
	checkCode(t, c.do(stun.MethodRefresh), stun.CodeWrongCredentials)
	checkCode(t, c.do(stun.MethodCreatePermission, peerAttr(newPeer(t, loop4).addr())), stun.CodeWrongCredentials)
}

// TestPolicyDenial: with the default policy, relaying to loopback, to a
// private address and to the server's own address is refused with 403,
// on CreatePermission and ChannelBind, and Send indications to a denied
// peer are dropped and counted.
func TestPolicyDenial(t *testing.T) {
	pol := mustPolicy(policy.Config{})
	e := newEnv(t, func(c *Config) { c.Policy = pol })
	pol.SetOwn([]netip.AddrPort{e.udp, e.tcp})
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	for _, peer := range []string{"127.0.0.1:5000", "[::ffff:127.0.0.1]:5000", "10.0.0.1:5000", "192.168.1.1:1", "[::ffff:10.1.2.3]:5000", e.udp.String()} {
		ap := netip.MustParseAddrPort(peer)
		checkCode(t, c.do(stun.MethodCreatePermission, peerAttr(ap)), stun.CodeForbidden)
		checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x4000), peerAttr(ap)), stun.CodeForbidden)
	}
	// All or none: one denied peer among allowed ones refuses them all.
	checkCode(t, c.do(stun.MethodCreatePermission, peerAttr(netip.MustParseAddrPort("192.0.2.1:1")), peerAttr(netip.MustParseAddrPort("10.0.0.1:1"))), stun.CodeForbidden)
	if st := e.turn.Stats(); st.Permissions != 0 {
		t.Errorf("Permissions = %d", st.Permissions)
	}

}

// TestRelayToRelay: two clients of the same server reach each other
// through their relayed addresses (both sides relayed, as ICE pairs them
// when both peers need TURN, and as turnutils_uclient -y does).
func TestRelayToRelay(t *testing.T) {
	e := newEnv(t, nil)
	a, b := dialClient(t, "udp", e.udp, "alice"), dialClient(t, "udp", e.udp, "bob")
	ra, rb := a.allocate(), b.allocate()
	a.permit(rb)
	b.permit(ra)
	a.send(rb, []byte("relay to relay"))
	if r := b.recv(); string(r.data) != "relay to relay" || r.peer != ra {
		t.Fatalf("b got %+v, want data from %v", r, ra)
	}
}

// TestChannelBindRules: RFC 8656, Section 12.2: a channel bound to one
// peer cannot be rebound to another, a peer bound to one channel cannot
// take a second, and binding the same pair again refreshes it. Loose
// numbers are accepted when configured.
func TestChannelBindRules(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LooseChannels = true })
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	p1, p2 := newPeer(t, loop4).addr(), newPeer(t, loop4).addr()
	c.bind(0x4000, p1)
	checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x4000), peerAttr(p2)), stun.CodeBadRequest)
	checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x4001), peerAttr(p1)), stun.CodeBadRequest)
	c.bind(0x4000, p1) // refresh
	c.bind(0x7fff, p2) // loose
	checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x8000), peerAttr(p2)), stun.CodeBadRequest)
	if st := e.turn.Stats(); st.Channels != 2 || st.Permissions != 1 {
		t.Errorf("Channels = %d, Permissions = %d; want 2 and 1 (both peers share 127.0.0.1)", st.Channels, st.Permissions)
	}
}
