package turnclient

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func kinds(ts []task) map[taskKind]int {
	m := map[taskKind]int{}
	for _, t := range ts {
		m[t.kind]++
	}
	return m
}

func TestRefreshDelay(t *testing.T) {
	for _, tc := range []struct{ l, want time.Duration }{
		{600 * time.Second, 540 * time.Second},
		{120 * time.Second, 60 * time.Second},
		{60 * time.Second, 30 * time.Second},
		{2 * time.Second, time.Second},
	} {
		if got := refreshDelay(tc.l); got != tc.want {
			t.Errorf("refreshDelay(%v) = %v, want %v", tc.l, got, tc.want)
		}
	}
}

func TestCoreAllocationRefresh(t *testing.T) {
	c := newCore(2, 600*time.Second, t0)
	if got := c.nextDeadline(); !got.Equal(t0.Add(540 * time.Second)) {
		t.Fatalf("next deadline %v, want t0+540s", got.Sub(t0))
	}
	if ts := c.due(t0.Add(539 * time.Second)); len(ts) != 0 {
		t.Fatalf("due before the refresh time: %v", ts)
	}
	ts := c.due(t0.Add(540 * time.Second))
	if len(ts) != 1 || ts[0].kind != taskRefresh {
		t.Fatalf("due at refresh time = %v, want one refresh", ts)
	}
	if ts := c.due(t0.Add(541 * time.Second)); len(ts) != 0 {
		t.Fatalf("a running refresh was handed out again: %v", ts)
	}
	// A timeout: retried soon, not lost while time remains.
	now := t0.Add(550 * time.Second)
	c.done(ts[0], 0, errors.New("timeout"), now)
	if c.lost != nil {
		t.Fatal("allocation lost after one failed refresh with time left")
	}
	if got := c.nextDeadline(); !got.Equal(now.Add(retryDelay)) {
		t.Fatalf("retry at %v, want +%v", got.Sub(now), retryDelay)
	}
	ts = c.due(now.Add(retryDelay))
	c.done(ts[0], 300*time.Second, nil, now.Add(retryDelay))
	if want := now.Add(retryDelay + 240*time.Second); !c.nextDeadline().Equal(want) {
		t.Fatalf("after refresh granting 300s next is %v, want %v", c.nextDeadline().Sub(t0), want.Sub(t0))
	}
	// 437: the allocation is gone.
	ts = c.due(c.nextDeadline())
	c.done(ts[0], 0, &stun.Error{Code: stun.CodeAllocationMismatch}, c.refreshAt)
	if c.lost == nil {
		t.Fatal("437 on Refresh did not lose the allocation")
	}
	if ts := c.due(t0.Add(time.Hour)); ts != nil || !c.nextDeadline().IsZero() {
		t.Fatal("a lost allocation still schedules work")
	}
}

func TestCoreRefreshFailsPastExpiry(t *testing.T) {
	c := newCore(2, 60*time.Second, t0)
	ts := c.due(t0.Add(30 * time.Second))
	c.done(ts[0], 0, errors.New("timeout"), t0.Add(61*time.Second))
	if c.lost == nil {
		t.Fatal("a refresh failing after expiry did not lose the allocation")
	}
}

func TestCorePermissions(t *testing.T) {
	c := newCore(2, 600*time.Second, t0)
	ip := netip.MustParseAddr("192.0.2.1")
	peer := netip.AddrPortFrom(ip, 5000)
	if c.hasPermission(ip, t0) {
		t.Fatal("permission before CreatePermission")
	}
	c.permissionCreated(ip, t0)
	if !c.hasPermission(ip, t0.Add(299*time.Second)) || c.hasPermission(ip, t0.Add(300*time.Second)) {
		t.Fatal("a permission must last exactly 300 s")
	}
	c.route(peer, t0.Add(time.Second)) // used
	ts := c.due(t0.Add(240 * time.Second))
	if k := kinds(ts); k[taskPermission] != 1 || ts[0].ip != ip {
		t.Fatalf("due at 240 s = %v, want a permission refresh for %v", ts, ip)
	}
	c.done(ts[0], 0, nil, t0.Add(241*time.Second))
	if !c.hasPermission(ip, t0.Add(500*time.Second)) {
		t.Fatal("refreshed permission does not last")
	}
	// Unused since: no refresh, and it lapses at expiry.
	if ts := c.due(t0.Add(481 * time.Second)); len(ts) != 0 {
		t.Fatalf("unused permission refreshed: %v", ts)
	}
	if got := c.nextDeadline(); !got.Equal(t0.Add(540 * time.Second)) {
		t.Fatalf("next %v, want the allocation refresh at 540 s", got.Sub(t0))
	}
	c.due(t0.Add(541 * time.Second))
	if _, ok := c.perms[ip]; ok {
		t.Fatal("expired unused permission kept")
	}
	// 403 on a refresh drops the permission.
	c.permissionCreated(ip, t0.Add(600*time.Second))
	c.received(peer)
	ts = c.due(t0.Add(840 * time.Second))
	for _, tk := range ts {
		if tk.kind == taskPermission {
			c.done(tk, 0, &stun.Error{Code: stun.CodeForbidden}, t0.Add(840*time.Second))
		}
	}
	if _, ok := c.perms[ip]; ok {
		t.Fatal("permission kept after 403")
	}
}

func TestCoreChannels(t *testing.T) {
	c := newCore(3, 600*time.Second, t0)
	peer := netip.MustParseAddrPort("192.0.2.1:5000")
	c.permissionCreated(peer.Addr(), t0)
	for i := range 2 {
		if ch, kick := c.route(peer, t0); ch != 0 || kick {
			t.Fatalf("packet %d: channel %#x kick %v before the threshold", i+1, ch, kick)
		}
	}
	ch, kick := c.route(peer, t0)
	if ch != 0 || !kick {
		t.Fatalf("third packet: channel %#x kick %v, want an indication and a kick", ch, kick)
	}
	ts := c.due(t0)
	if len(ts) != 1 || ts[0].kind != taskBind || ts[0].ch != turn.MinChannel || ts[0].peer != peer {
		t.Fatalf("due = %+v, want ChannelBind 0x4000 for %v", ts, peer)
	}
	if p, ok := c.channelPeer(turn.MinChannel); !ok || p != peer {
		t.Fatal("channel number not mapped while the bind runs")
	}
	if ch, _ := c.route(peer, t0); ch != 0 {
		t.Fatal("channel used before the server confirmed it")
	}
	c.done(ts[0], 0, nil, t0.Add(time.Second))
	if ch, _ := c.route(peer, t0.Add(2*time.Second)); ch != turn.MinChannel {
		t.Fatalf("after the bind: channel %#x, want 0x4000", ch)
	}
	if !c.hasPermission(peer.Addr(), t0.Add(300*time.Second)) {
		t.Fatal("ChannelBind did not refresh the permission")
	}
	// Refresh at 9 minutes, since it was used.
	ts = c.due(t0.Add(541 * time.Second))
	if k := kinds(ts); k[taskBind] != 1 {
		t.Fatalf("due at 541 s = %v, want a channel refresh", ts)
	}
	for _, tk := range ts {
		c.done(tk, 600*time.Second, nil, t0.Add(542*time.Second))
	}
	// Unused: lapses at expiry, then rebinding needs the threshold again
	// and reuses the number.
	c.due(t0.Add(542*time.Second + channelLifetime))
	if ch, _ := c.route(peer, t0.Add(1200*time.Second)); ch != 0 {
		t.Fatal("lapsed channel still used")
	}
	c.route(peer, t0.Add(1200*time.Second))
	if _, kick := c.route(peer, t0.Add(1200*time.Second)); !kick {
		t.Fatal("no rebind after the threshold")
	}
	for _, tk := range c.due(t0.Add(1200 * time.Second)) {
		if tk.kind == taskBind && tk.ch != turn.MinChannel {
			t.Fatalf("rebind used %#x, want the peer's old number", tk.ch)
		}
	}
}

func TestCoreBindFailureAndExhaustion(t *testing.T) {
	c := newCore(1, 600*time.Second, t0)
	peer := netip.MustParseAddrPort("[2001:db8::1]:7")
	c.route(peer, t0)
	ts := c.due(t0)
	c.done(ts[0], 0, &stun.Error{Code: stun.CodeBadRequest}, t0)
	if got := c.nextDeadline(); !got.Equal(t0.Add(bindRetryDelay)) {
		t.Fatalf("retry at %v, want %v", got.Sub(t0), bindRetryDelay)
	}
	if ts := c.due(t0.Add(bindRetryDelay)); len(ts) != 1 || ts[0].kind != taskBind {
		t.Fatalf("due = %v, want the bind retried", ts)
	}
	// Exhaust the numbers: 4096 peers get one each, the next none.
	c = newCore(1, 600*time.Second, t0)
	n := int(turn.MaxChannel-turn.MinChannel) + 1
	for i := range n {
		p := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 9)
		if _, kick := c.route(p, t0); !kick {
			t.Fatalf("peer %d got no channel", i)
		}
	}
	if _, kick := c.route(netip.MustParseAddrPort("10.99.0.1:9"), t0); kick {
		t.Fatal("a channel number past 0x4FFF was handed out")
	}
}

// TestCoreKeepPermissions: a TCP allocation refreshes its permissions
// although the core never sees them used (peer connections bypass it).
func TestCoreKeepPermissions(t *testing.T) {
	c := newCore(2, 3600*time.Second, t0)
	c.keepPermissions = true
	ip := netip.MustParseAddr("192.0.2.1")
	c.permissionCreated(ip, t0)
	if got := c.nextDeadline(); !got.Equal(t0.Add(permissionRefresh)) {
		t.Fatalf("next %v, want the permission refresh at %v", got.Sub(t0), permissionRefresh)
	}
	now := t0
	for i := range 3 {
		now = now.Add(permissionRefresh)
		ts := c.due(now)
		if k := kinds(ts); k[taskPermission] != 1 || ts[0].ip != ip {
			t.Fatalf("round %d: due = %v, want a permission refresh", i, ts)
		}
		c.done(ts[0], 0, nil, now)
		if !c.hasPermission(ip, now.Add(permissionLifetime-time.Second)) {
			t.Fatalf("round %d: permission not extended", i)
		}
	}
}
