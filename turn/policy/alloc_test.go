package policy

import (
	"net/netip"
	"testing"
)

func allocPolicy(tb testing.TB) *Policy {
	tb.Helper()
	p := newPolicy(tb, Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("9.9.9.0/24"), netip.MustParsePrefix("2606:4700::/32")},
	})
	p.SetOwn([]netip.AddrPort{netip.MustParseAddrPort("[::]:3478"), netip.MustParseAddrPort("8.8.8.8:50000")})
	return p
}

var allocPeers = []struct {
	peer  netip.AddrPort
	allow bool
}{
	{netip.MustParseAddrPort("8.8.8.8:1234"), true},
	{netip.MustParseAddrPort("[2001:4860:4860::8888]:1234"), true},
	{netip.MustParseAddrPort("[::ffff:8.8.4.4]:1234"), true},
	{netip.MustParseAddrPort("127.0.0.1:1234"), true},
	{netip.MustParseAddrPort("10.0.0.1:1234"), false},
	{netip.MustParseAddrPort("[fe80::1%eth0]:1234"), false},
	{netip.MustParseAddrPort("[2002:a00:1::]:1234"), false},
	{netip.MustParseAddrPort("[2001:0:4136:e378:8000:63bf:3fff:fdd2]:1234"), false},
	{netip.MustParseAddrPort("9.9.9.9:1234"), false},
	{netip.MustParseAddrPort("8.8.8.8:50000"), false},
	{netip.MustParseAddrPort("127.0.0.1:3478"), false},
	{netip.MustParseAddrPort("8.8.8.8:0"), false},
}

func TestAllowedAllocatesNothing(t *testing.T) {
	p := allocPolicy(t)
	for _, tc := range allocPeers {
		if got := p.Allowed(tc.peer); got != tc.allow {
			t.Fatalf("%v: Allowed=%v want %v", tc.peer, got, tc.allow)
		}
		if n := testing.AllocsPerRun(100, func() { p.Allowed(tc.peer) }); n != 0 {
			t.Errorf("Allowed(%v) allocates %v times", tc.peer, n)
		}
		if tc.allow {
			if n := testing.AllocsPerRun(100, func() { _ = p.Check(tc.peer) }); n != 0 {
				t.Errorf("Check(%v) (allowed) allocates %v times", tc.peer, n)
			}
		}
	}
}

func BenchmarkAllowed(b *testing.B) {
	p := allocPolicy(b)
	for _, tc := range allocPeers {
		b.Run(tc.peer.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Allowed(tc.peer)
			}
		})
	}
}

func BenchmarkAddRemoveOwn(b *testing.B) {
	p := allocPolicy(b)
	for i := range 10000 { // a busy server's relay addresses
		p.AddOwn(netip.AddrPortFrom(netip.MustParseAddr("8.8.8.8"), uint16(49152+i)))
	}
	a := netip.MustParseAddrPort("8.8.4.4:60000")
	b.ReportAllocs()
	for b.Loop() {
		p.AddOwn(a)
		p.RemoveOwn(a)
	}
}
