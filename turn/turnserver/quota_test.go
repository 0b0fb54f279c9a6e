package turnserver

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestQuotas shows each allocation limit biting: per user (486), for the
// server (508), and an exhausted port range (508).
func TestQuotas(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Quotas.AllocationsPerUser = 2 })
		dialClient(t, "udp", e.udp, "alice").allocate()
		dialClient(t, "udp", e.udp, "alice").allocate()
		checkCode(t, dialClient(t, "udp", e.udp, "alice").do(stun.MethodAllocate, transport(17)), stun.CodeAllocationQuotaReached)
		bob := dialClient(t, "udp", e.udp, "bob")
		bob.allocate() // another user is not affected
		// Deleting one of alice's frees a slot.
		bob.user, bob.pass = "alice", users["alice"]
		bob.nonce = ""
		checkCode(t, bob.do(stun.MethodRefresh), stun.CodeWrongCredentials)
	})
	t.Run("total", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Quotas.TotalAllocations = 1 })
		c := dialClient(t, "udp", e.udp, "alice")
		c.allocate()
		checkCode(t, dialClient(t, "udp", e.udp, "bob").do(stun.MethodAllocate, transport(17)), stun.CodeInsufficientCapacity)
		c.checkOK(c.do(stun.MethodRefresh, lifetime(0)))
		dialClient(t, "udp", e.udp, "bob").allocate()
	})
	t.Run("ports", func(t *testing.T) {
		port := freeUDPPort(t)
		e := newEnv(t, func(c *Config) { c.PortRange = PortRange{port, port} })
		if got := dialClient(t, "udp", e.udp, "alice").allocate(); got.Port() != port {
			t.Errorf("relay port %d, want %d", got.Port(), port)
		}
		checkCode(t, dialClient(t, "udp", e.udp, "bob").do(stun.MethodAllocate, transport(17)), stun.CodeInsufficientCapacity)
		if st := e.turn.Stats(); st.Allocations != 1 {
			t.Errorf("Allocations = %d", st.Allocations)
		}
	})
}

func freeUDPPort(t testing.TB) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestBandwidthQuota: with 1000 bytes/s per allocation (a bucket of one
// second), five 400-byte packets at one instant let two through; the
// others are dropped and counted; a second later there is room again. The
// per-user bucket is shared by the user's allocations. The clock is fake,
// so the numbers are exact.
func TestBandwidthQuota(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    Quotas
	}{
		{"per allocation", Quotas{BandwidthPerAllocation: 1000}},
		{"per user", Quotas{BandwidthPerUser: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Quotas = tc.q })
			c := dialClient(t, "udp", e.udp, "alice")
			c.allocate()
			p := newPeer(t, loop4)
			c.permit(p.addr())
			c.bind(0x4000, p.addr())
			other := dialClient(t, "udp", e.udp, "alice")
			other.allocate()
			other.permit(p.addr())
			other.bind(0x4000, p.addr())

			pkt := func(i int) []byte { return fmt.Appendf(make([]byte, 0, 400), "%0400d", i) }
			for i := range 5 {
				c.sendChannel(0x4000, pkt(i))
			}
			// The other allocation of the same user: its own bucket is
			// full, the user's is not.
			other.sendChannel(0x4000, pkt(5))
			waitFor(t, "six packets handled", func() bool {
				st := e.turn.Stats()
				return st.ToPeerPackets+st.DroppedQuota == 6
			})
			e.clock.Advance(time.Second)
			c.sendChannel(0x4000, pkt(6))

			want := []int{0, 1, 5, 6}
			if tc.q.BandwidthPerUser > 0 {
				want = []int{0, 1, 6}
			}
			for _, i := range want {
				if got, _ := p.recv(); string(got) != string(pkt(i)) {
					t.Fatalf("peer got packet %.10q..., want %d", got, i)
				}
			}
			if st := e.turn.Stats(); st.DroppedQuota != uint64(7-len(want)) {
				t.Errorf("DroppedQuota = %d, want %d", st.DroppedQuota, 7-len(want))
			}
		})
	}
}

// TestLifetimes drives expiry with the fake clock: allocations (RFC 8656,
// Section 8), permissions (Section 9, 300 s) and channels (Section 12,
// 600 s), and the LIFETIME clamp (Section 7.2).
func TestLifetimes(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")

	for _, tc := range []struct{ ask, want time.Duration }{
		{10 * time.Second, DefaultLifetime},
		{7200 * time.Second, DefaultMaxLifetime},
		{900 * time.Second, 900 * time.Second},
	} {
		m := c.do(stun.MethodRefresh, lifetime(tc.ask))
		if tc.ask == 10*time.Second {
			// The first round: no allocation yet.
			checkCode(t, m, stun.CodeAllocationMismatch)
			m = c.do(stun.MethodAllocate, transport(17), lifetime(tc.ask))
		}
		c.checkOK(m)
		v, _ := m.Get(stun.AttrLifetime)
		if d, _ := turn.ParseLifetime(v); d != tc.want {
			t.Errorf("asked %v, got %v, want %v", tc.ask, d, tc.want)
		}
	}
	// The allocation lives 900 s from the last Refresh.
	e.clock.Advance(899 * time.Second)
	e.turn.sweep()
	if st := e.turn.Stats(); st.Allocations != 1 {
		t.Fatalf("Allocations = %d after 899 s", st.Allocations)
	}
	e.clock.Advance(2 * time.Second)
	e.turn.sweep()
	if st := e.turn.Stats(); st.Allocations != 0 {
		t.Fatalf("Allocations = %d after 901 s", st.Allocations)
	}
	checkCode(t, c.do(stun.MethodRefresh), stun.CodeAllocationMismatch)
	if n := e.turn.ports[0].held(); n != 0 {
		t.Errorf("%d ports held after expiry", n)
	}

	// Permissions and channels.
	c = dialClient(t, "udp", e.udp, "alice")
	relayed := c.allocate(lifetime(3600 * time.Second))
	p := newPeer(t, loop4)
	c.bind(0x4000, p.addr())           // channel until 600 s, permission until 300 s
	e.clock.Advance(299 * time.Second) // 299 s
	e.turn.sweep()
	p.sendTo(relayed, []byte("at 299"))
	if r := c.recv(); r.channel != 0x4000 || string(r.data) != "at 299" {
		t.Fatalf("got %+v", r)
	}
	e.clock.Advance(2 * time.Second)
	e.turn.sweep()
	if st := e.turn.Stats(); st.Permissions != 0 || st.Channels != 1 {
		t.Fatalf("at 301 s: Permissions %d, Channels %d; want 0 and 1", st.Permissions, st.Channels)
	}
	dropped := e.turn.Stats().DroppedNoPermission
	p.sendTo(relayed, []byte("at 301"))
	waitFor(t, "the packet without permission to be dropped", func() bool { return e.turn.Stats().DroppedNoPermission == dropped+1 })
	// A new permission lets the channel work again, until the channel
	// expires at 600 s; then data comes as Data indications.
	c.permit(p.addr()) // until 601 s
	e.clock.Advance(299 * time.Second)
	e.turn.sweep()
	if st := e.turn.Stats(); st.Permissions != 1 || st.Channels != 0 {
		t.Fatalf("at 600 s: Permissions %d, Channels %d; want 1 and 0", st.Permissions, st.Channels)
	}
	p.sendTo(relayed, []byte("at 600"))
	if r := c.recv(); r.channel != 0 || r.peer != p.addr() || string(r.data) != "at 600" {
		t.Fatalf("got %+v", r)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
}

// everything is a policy that allows every peer.
type everything struct{}

func (everything) Allowed(netip.AddrPort) bool { return true }
func (everything) Check(netip.AddrPort) error  { return nil }

// TestFailingSendKeepsAllocation: a send the kernel refuses (here EINVAL:
// UDP to port 0, which only a policy that allows everything lets through)
// is counted and dropped; the allocation keeps relaying. coturn deletes
// the allocation instead.
func TestFailingSendKeepsAllocation(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Policy = everything{} })
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	p := newPeer(t, loop4)
	c.permit(p.addr())
	c.send(netip.AddrPortFrom(loop4, 0), []byte("refused"))
	c.send(p.addr(), []byte("still relayed"))
	if got, _ := p.recv(); string(got) != "still relayed" {
		t.Fatalf("peer got %q", got)
	}
	// The peer may read before the server counts.
	waitFor(t, "the send counted", func() bool { return e.turn.Stats().ToPeerPackets == 1 })
	st := e.turn.Stats()
	if st.SendErrors != 1 || st.Allocations != 1 || st.ToPeerPackets != 1 {
		t.Errorf("SendErrors %d, Allocations %d, ToPeerPackets %d; want 1, 1, 1", st.SendErrors, st.Allocations, st.ToPeerPackets)
	}
}

// TestOwnAddressDenied: with loopback allowed (as in an interop test), the
// server's own listener address is still refused, on CreatePermission and
// per Send indication.
func TestOwnAddressDenied(t *testing.T) {
	pol := mustPolicy(policyAllowLoopback())
	e := newEnv(t, func(c *Config) { c.Policy = pol })
	pol.SetOwn([]netip.AddrPort{e.udp, e.tcp})
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	checkCode(t, c.do(stun.MethodCreatePermission, peerAttr(e.udp)), stun.CodeForbidden)
	checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x4000), peerAttr(e.udp)), stun.CodeForbidden)
	// A permission for the IP (another port) does not open the own port
	// to Send indications.
	p := newPeer(t, loop4)
	c.permit(p.addr())
	c.send(e.udp, []byte("to myself"))
	c.send(p.addr(), []byte("to the peer"))
	if got, _ := p.recv(); string(got) != "to the peer" {
		t.Fatalf("peer got %q", got)
	}
	if st := e.turn.Stats(); st.DroppedPolicy != 1 {
		t.Errorf("DroppedPolicy = %d, want 1", st.DroppedPolicy)
	}
}

// TestRESTQuota: TURN REST credentials count against the user part of
// "expiry:user", so fresh credentials do not escape the per-user quota.
func TestRESTQuota(t *testing.T) {
	e := restEnv(t, func(c *Config) { c.Quotas.AllocationsPerUser = 1 })
	rest := func(expiry time.Time) *client {
		c := dialClient(t, "udp", e.udp, "alice")
		c.user, c.pass = turn.RESTCredentials(restSecret, "carol", expiry)
		return c
	}
	now := e.clock.Now()
	rest(now.Add(time.Hour)).allocate()
	checkCode(t, rest(now.Add(2*time.Hour)).do(stun.MethodAllocate, transport(17)), stun.CodeAllocationQuotaReached)
}
