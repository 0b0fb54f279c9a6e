package turnserver

import (
	"context"
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// TestOverflowAlternate: a server at TotalAllocations answers 300 with the
// sibling of the client's address family as ALTERNATE-SERVER, signed; a
// TURN client follows it and allocates on the sibling. Without a sibling
// of that family the answer stays 508.
func TestOverflowAlternate(t *testing.T) {
	sibling := newEnv(t, nil)
	// Start the sibling's relay goroutines now: the leak check of the
	// env made next counts the goroutines alive at its start.
	dialClient(t, "udp", sibling.udp, "alice").allocate()
	v6only := netip.MustParseAddrPort("[::1]:3478")
	full := newEnv(t, func(c *Config) {
		c.Quotas.TotalAllocations = 1
		c.OverflowAlternates = []netip.AddrPort{v6only, sibling.udp}
	})
	dialClient(t, "udp", full.udp, "alice").allocate()

	bob := dialClient(t, "udp", full.udp, "bob")
	m := bob.do(stun.MethodAllocate, transport(17))
	checkCode(t, m, stun.CodeTryAlternate)
	if alt, err := m.Address(stun.AttrAlternateServer); err != nil || alt != sibling.udp {
		t.Fatalf("ALTERNATE-SERVER %v, %v; want %v", alt, err, sibling.udp)
	}
	key, _ := stun.LongTermKey(stun.PasswordMD5, "bob", realm, users["bob"])
	if err := m.CheckIntegrity(key); err != nil {
		t.Fatalf("300 not signed: %v", err)
	}

	r, err := turnclient.Allocate(context.Background(), turnclient.Config{
		Server: full.udp.String(), Username: "bob", Password: users["bob"],
	})
	if err != nil {
		t.Fatalf("turnclient.Allocate through the 300: %v", err)
	}
	defer r.Close()
	if r.Server() != sibling.udp {
		t.Errorf("allocated on %v, want the sibling %v", r.Server(), sibling.udp)
	}
	if st := sibling.turn.Stats(); st.Allocations != 2 {
		t.Errorf("sibling holds %d allocations, want 2", st.Allocations)
	}

	only6 := newEnv(t, func(c *Config) {
		c.Quotas.TotalAllocations = 1
		c.OverflowAlternates = []netip.AddrPort{v6only}
	})
	dialClient(t, "udp", only6.udp, "alice").allocate()
	checkCode(t, dialClient(t, "udp", only6.udp, "bob").do(stun.MethodAllocate, transport(17)), stun.CodeInsufficientCapacity)

	bad := Config{OverflowAlternates: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")}}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepts an unspecified alternate")
	}
}
