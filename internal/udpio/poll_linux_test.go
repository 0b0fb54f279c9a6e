//go:build linux

package udpio

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// counter is a PollHandler that only counts, for allocation tests.
type counter struct{ n, bytes int }

func (c *counter) Received(_ int, ms []Message) {
	c.n += len(ms)
	for i := range ms {
		c.bytes += ms[i].N
	}
}
func (c *counter) ReadFailed(int, error) {}
func (c *counter) Flush()                {}

// TestPollerNoAllocs proves that the Poller's read path (epoll_wait, the
// drain's recvfrom into the arena, the hand-over) allocates nothing,
// driving it with PollNow on real sockets.
func TestPollerNoAllocs(t *testing.T) {
	h := &counter{}
	p, err := NewPoller[int](PollConfig{Headroom: 36, Tailroom: 4}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := listenUDP(t, loop4), listenUDP(t, loop4)
	for i, c := range []*net.UDPConn{a, b} {
		r, err := p.Add(c, i)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(r)
	}
	s := listenUDP(t, loop4)
	to := []netip.AddrPort{localAddr(a), localAddr(b)}
	payload := make([]byte, 200)
	const perRun = 10
	run := func() {
		for i := range perRun {
			s.WriteToUDPAddrPort(payload, to[i%2])
		}
		for got, polls := 0, 0; got < perRun && polls < 1e6; polls++ {
			got += p.PollNow()
		}
	}
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per run", n)
	}
	if h.n != 101*perRun || h.bytes != 101*perRun*len(payload) {
		t.Errorf("handled %d datagrams of %d bytes, want %d of %d", h.n, h.bytes, 101*perRun, 101*perRun*len(payload))
	}
}

// TestDecodeSockaddr: the one decoder of source addresses (recvmmsg and
// the Poller's recvfrom) unmaps IPv4-mapped sources and keeps the zone
// of a link-local IPv6 source.
func TestDecodeSockaddr(t *testing.T) {
	lo, err := net.InterfaceByIndex(1)
	if err != nil {
		t.Skipf("no interface 1: %v", err)
	}
	for _, tc := range []struct {
		name string
		sa   unix.RawSockaddrInet6
		want netip.AddrPort
	}{
		{"IPv4", sockaddr4(netip.MustParseAddrPort("192.0.2.1:3478")), netip.MustParseAddrPort("192.0.2.1:3478")},
		{"IPv6", sockaddr6(netip.MustParseAddrPort("[2001:db8::1]:5"), 0), netip.MustParseAddrPort("[2001:db8::1]:5")},
		{"mapped", sockaddr6(netip.MustParseAddrPort("[::ffff:192.0.2.9]:7"), 0), netip.MustParseAddrPort("192.0.2.9:7")},
		{"zone", sockaddr6(netip.MustParseAddrPort("[fe80::1]:9"), 1), netip.AddrPortFrom(netip.MustParseAddr("fe80::1").WithZone(lo.Name), 9)},
		{"other family", unix.RawSockaddrInet6{Family: unix.AF_UNIX}, netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodeSockaddr(&tc.sa); got != tc.want {
				t.Errorf("decoded %v, want %v", got, tc.want)
			}
		})
	}
}

func sockaddr4(ap netip.AddrPort) unix.RawSockaddrInet6 {
	var sa unix.RawSockaddrInet6
	if _, err := encodeSockaddr(unix.AF_INET, ap, &sa); err != nil {
		panic(err)
	}
	return sa
}

func sockaddr6(ap netip.AddrPort, scope uint32) unix.RawSockaddrInet6 {
	var sa unix.RawSockaddrInet6
	if _, err := encodeSockaddr(unix.AF_INET6, ap, &sa); err != nil {
		panic(err)
	}
	sa.Scope_id = scope
	return sa
}
