//go:build linux

// The Connect tests need blackHole, which relies on Linux dropping the SYNs
// to a full accept queue of backlog 0.

package turnserver

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// blackHole returns a loopback TCP address that never answers a SYN: a
// listener with a backlog of 0 whose accept queue is full, so the kernel
// drops further SYNs (the peer of the Connect flood, without any
// outside address).
func blackHole(t testing.TB) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(loop4, uint16(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue until a connection attempt hangs.
	for range 8 {
		c, err := net.DialTimeout("tcp4", addr.String(), 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("%v keeps accepting connections", addr)
	return addr
}

// connectReq builds a signed Connect to peer.
func connectReq(c *client, peer netip.AddrPort) ([]byte, stun.TransactionID) {
	id := stun.NewTransactionID()
	return c.build(stun.Type{Method: stun.MethodConnect, Class: stun.ClassRequest}, id, true, peerAttr(peer)), id
}

// tcpAllocate makes a TCP allocation (RFC 6062) on a new control
// connection of user.
func tcpAllocate(t testing.TB, e *env, user string) *client {
	t.Helper()
	c := dialClient(t, "tcp", e.tcp, user)
	c.checkOK(c.do(stun.MethodAllocate, transport(turn.ProtoTCP)))
	return c
}

// TestConnectFlood: Connects to peers that never answer each hold a socket
// for 30 s. They are bounded per allocation (508) and per user (486), and
// by the descriptor budget (508), which also bounds new allocations; the
// listeners keep accepting clients.
func TestConnectFlood(t *testing.T) {
	holes := make([]netip.AddrPort, 7)
	for i := range holes {
		holes[i] = blackHole(t)
	}
	e := newEnv(t, func(c *Config) {
		c.Quotas.ConnectsPerAllocation = 4
		c.Quotas.ConnectsPerUser = 6
	})
	a1 := tcpAllocate(t, e, "alice")
	// The flood: four wait for their peer, the rest are refused at once.
	for i, h := range holes {
		b, id := connectReq(a1, h)
		if i < 4 {
			a1.write(b)
			continue
		}
		checkCode(t, a1.roundTrip(b, id), stun.CodeInsufficientCapacity)
	}
	a2 := tcpAllocate(t, e, "alice")
	for i, h := range holes[:3] {
		b, id := connectReq(a2, h)
		if i < 2 {
			a2.write(b)
			continue
		}
		checkCode(t, a2.roundTrip(b, id), stun.CodeAllocationQuotaReached)
	}
	st := e.turn.Stats()
	if st.RefusedConnects != 3 || st.RefusedUserConnects != 1 {
		t.Errorf("RefusedConnects %d, RefusedUserConnects %d; want 3 and 1", st.RefusedConnects, st.RefusedUserConnects)
	}
	// Another user is not affected by alice's pending Connects.
	bob := tcpAllocate(t, e, "bob")
	p := tcpPeer(t)
	b, id := connectReq(bob, tcpAddr(p.Addr()))
	bob.checkOK(bob.roundTrip(b, id))
	// Deleting the allocation ends its dials and gives the user's slots
	// back (so would their 30 s timeout).
	a1.checkOK(a1.do(stun.MethodRefresh, lifetime(0)))
	b, _ = connectReq(a2, holes[4])
	a2.write(b)
	a2.checkOK(a2.do(stun.MethodRefresh)) // the Connect before it was handled
	if st := e.turn.Stats(); st.RefusedUserConnects != 1 {
		t.Errorf("RefusedUserConnects %d after the slots came back, want 1", st.RefusedUserConnects)
	}
}

// TestDescriptorBudget: every descriptor the server holds counts against
// Quotas.Descriptors: past it, Allocate and Connect get 508, and what is
// released is usable again.
func TestDescriptorBudget(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Quotas.Descriptors = 4 })
	u1 := dialClient(t, "udp", e.udp, "alice")
	u1.allocate(evenPort(true))    // the relay and the reserved port: 2
	tc := tcpAllocate(t, e, "bob") // the TCP relay's listener: 3
	h := blackHole(t)
	b, _ := connectReq(tc, h)
	tc.write(b) // a socket dialling: 4
	// The Connect is handled on bob's connection's own goroutine: wait
	// until its socket is counted before asking for more.
	waitFor(t, "the dialling socket counted", func() bool { return e.turn.fds.held.Load() == 4 })
	checkCode(t, dialClient(t, "udp", e.udp, "bob").do(stun.MethodAllocate, transport(turn.ProtoUDP)), stun.CodeInsufficientCapacity)
	b, id := connectReq(tc, tcpAddr(tcpPeer(t).Addr()))
	checkCode(t, tc.roundTrip(b, id), stun.CodeInsufficientCapacity)
	if st := e.turn.Stats(); st.RefusedDescriptors != 2 {
		t.Errorf("RefusedDescriptors %d, want 2", st.RefusedDescriptors)
	}
	// The listeners still accept a fresh client.
	fresh := dialClient(t, "tcp", e.tcp, "bob")
	fresh.challenge()
	// Deleting alice's allocation (relay) frees one descriptor; her
	// reservation holds the other until it expires.
	u1.checkOK(u1.do(stun.MethodRefresh, lifetime(0)))
	dialClient(t, "udp", e.udp, "bob").allocate()
	e.clock.Advance(ReservationLifetime + time.Second)
	e.turn.sweep()
	dialClient(t, "udp", e.udp, "bob").allocate()
}
