package policy

import (
	"errors"
	"net/netip"
	"testing"
)

func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "64:ff9b:1::1",
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", "fe80::1", "fc00::1", "ff02::1", "::1", "::",
		"2001:4860:4860::8888", "::ffff:8.8.8.8",
	} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:], uint16(3478), false)
	}
	f.Add([]byte{127, 0, 0, 1}, uint16(3478), true)
	f.Add([]byte{8, 8, 8, 8}, uint16(0), true)

	p := newPolicy(f, Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("2002::/16")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("8.8.8.0/24"), netip.MustParsePrefix("2606::/16")},
	})
	p.SetOwn([]netip.AddrPort{netip.MustParseAddrPort("[::]:3478"), netip.MustParseAddrPort("1.1.1.1:50000")})

	f.Fuzz(func(t *testing.T, raw []byte, port uint16, v4 bool) {
		var a netip.Addr
		switch {
		case v4 && len(raw) >= 4:
			a = netip.AddrFrom4([4]byte(raw[:4]))
		case len(raw) >= 16:
			a = netip.AddrFrom16([16]byte(raw[:16]))
		default:
			a, _ = netip.AddrFromSlice(raw) // often the invalid zero Addr
		}
		peer := netip.AddrPortFrom(a, port)
		err := p.Check(peer)
		if p.Allowed(peer) != (err == nil) {
			t.Fatalf("%v: Allowed and Check disagree (%v)", peer, err)
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Fatalf("%v: %v does not wrap ErrDenied", peer, err)
		}
		// The mapped form is always judged like the IPv4 form.
		if a.Is4() {
			mapped := netip.AddrPortFrom(netip.AddrFrom16(a.As16()), port)
			if p.Allowed(mapped) != (err == nil) {
				t.Fatalf("%v and %v judged differently", peer, mapped)
			}
		}
		if port == 0 && err == nil {
			t.Fatalf("%v allowed with port 0", peer)
		}
	})
}
