package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// teredo builds a Teredo address (RFC 4380, Section 4) for a server and a
// client address and port; the client address and port are stored inverted.
func teredo(server, client string, port uint16) netip.Addr {
	s := netip.MustParseAddr(server).As4()
	c := netip.MustParseAddr(client).As4()
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	copy(b[4:8], s[:])
	b[8] = 0x80 // cone flag
	b[10], b[11] = byte(^port>>8), byte(^port)
	for i := range 4 {
		b[12+i] = ^c[i]
	}
	return netip.AddrFrom16(b)
}

func newPolicy(tb testing.TB, cfg Config) *Policy {
	tb.Helper()
	if cfg.LocalAddrs == nil {
		cfg.LocalAddrs = []netip.Addr{} // keep tests independent of the host
	}
	p, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p
}

// checkPeer asserts the verdict for one peer and that Check and Allowed agree,
// and that a denial's reason contains want (when not empty).
func checkPeer(tb testing.TB, p *Policy, peer netip.AddrPort, allow bool, want string) {
	tb.Helper()
	err := p.Check(peer)
	if got := p.Allowed(peer); got != (err == nil) {
		tb.Fatalf("%v: Allowed=%v but Check=%v", peer, got, err)
	}
	if allow {
		if err != nil {
			tb.Fatalf("%v: want allowed, got %v", peer, err)
		}
		return
	}
	if err == nil {
		tb.Fatalf("%v: want denied (%s), got allowed", peer, want)
	}
	if !errors.Is(err, ErrDenied) {
		tb.Fatalf("%v: error %v does not wrap ErrDenied", peer, err)
	}
	var de *DeniedError
	if !errors.As(err, &de) || de.Peer != peer {
		tb.Fatalf("%v: error %#v is not a *DeniedError for the peer", peer, err)
	}
	if !strings.Contains(err.Error(), want) {
		tb.Fatalf("%v: error %q does not mention %q", peer, err, want)
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := newPolicy(t, Config{})
	cases := []struct {
		addr  string // parsed with netip.ParseAddr unless teredo is set
		addrV netip.Addr
		allow bool
		want  string // substring of the denial reason
	}{
		// IPv4 built-ins, with the edges of each range.
		{addr: "0.0.0.0", want: "0.0.0.0/8 (\"this network\", RFC 791)"},
		{addr: "0.255.255.255", want: "0.0.0.0/8"},
		{addr: "10.0.0.1", want: "10.0.0.1 is in 10.0.0.0/8 (private, RFC 1918)"},
		{addr: "10.255.255.255", want: "10.0.0.0/8"},
		{addr: "172.16.0.1", want: "172.16.0.0/12 (private, RFC 1918)"},
		{addr: "172.31.255.255", want: "172.16.0.0/12"},
		{addr: "192.168.1.1", want: "192.168.0.0/16 (private, RFC 1918)"},
		{addr: "100.64.0.1", want: "100.64.0.0/10 (shared address space, RFC 6598)"},
		{addr: "100.127.255.255", want: "100.64.0.0/10"},
		{addr: "127.0.0.1", want: "127.0.0.0/8 (loopback, RFC 1122)"},
		{addr: "127.255.255.254", want: "127.0.0.0/8"},
		{addr: "169.254.169.254", want: "169.254.0.0/16 (link-local, RFC 3927)"},
		{addr: "192.0.0.9", want: "192.0.0.0/24 (IETF protocol assignments, RFC 6890)"},
		{addr: "192.0.2.1", want: "192.0.2.0/24 (documentation TEST-NET-1, RFC 5737)"},
		{addr: "198.51.100.7", want: "198.51.100.0/24 (documentation TEST-NET-2, RFC 5737)"},
		{addr: "203.0.113.1", want: "203.0.113.0/24 (documentation TEST-NET-3, RFC 5737)"},
		{addr: "192.88.99.1", want: "192.88.99.0/24 (6to4 relay anycast, RFC 7526)"},
		{addr: "198.18.0.1", want: "198.18.0.0/15 (benchmarking, RFC 2544)"},
		{addr: "198.19.255.255", want: "198.18.0.0/15"},
		{addr: "224.0.0.1", want: "224.0.0.0/4 (multicast, RFC 5771)"},
		{addr: "239.255.255.250", want: "224.0.0.0/4"},
		{addr: "240.0.0.1", want: "240.0.0.0/4 (reserved, RFC 1112)"},
		{addr: "255.255.255.255", want: "255.255.255.255/32 (limited broadcast, RFC 919)"},
		// IPv4 public, including the neighbours of denied ranges.
		{addr: "8.8.8.8", allow: true},
		{addr: "1.1.1.1", allow: true},
		{addr: "9.255.255.255", allow: true},
		{addr: "11.0.0.0", allow: true},
		{addr: "100.63.255.255", allow: true},
		{addr: "100.128.0.0", allow: true},
		{addr: "172.15.255.255", allow: true},
		{addr: "172.32.0.0", allow: true},
		{addr: "192.0.1.255", allow: true},
		{addr: "192.167.255.255", allow: true},
		{addr: "198.17.255.255", allow: true},
		{addr: "198.20.0.0", allow: true},
		{addr: "223.255.255.255", allow: true},
		// IPv6 built-ins.
		{addr: "::", want: ":: is in ::/128 (unspecified, RFC 4291)"},
		{addr: "::1", want: "::1 is in ::1/128 (loopback, RFC 4291)"},
		{addr: "fc00::1", want: "fc00::/7 (unique local, RFC 4193)"},
		{addr: "fdff:ffff::1", want: "fc00::/7"},
		{addr: "fe80::1", want: "fe80::/10 (link-local, RFC 4291)"},
		{addr: "fe80::1%eth0", want: "fe80::/10"},
		{addr: "fec0::1", want: "fec0::/10 (site-local, deprecated, RFC 3879)"},
		{addr: "ff02::1", want: "ff00::/8 (multicast, RFC 4291)"},
		{addr: "ff0e::1", want: "ff00::/8"},
		{addr: "2001:db8::1", want: "2001:db8::/32 (documentation, RFC 3849)"},
		{addr: "3fff::1", want: "3fff::/20 (documentation, RFC 9637)"},
		{addr: "100::1", want: "100::/64 (discard-only, RFC 6666)"},
		{addr: "2001:2::1", want: "2001::/23 (IETF protocol assignments, RFC 2928)"},
		{addr: "2001:1ff::1", want: "2001::/23"},
		{addr: "5f00::1", want: "5f00::/16 (SRv6 SIDs, RFC 9602)"},
		{addr: "4000::1", want: "outside 2000::/3"},
		{addr: "::1:0:0:1", want: "outside 2000::/3"},
		// IPv6 public.
		{addr: "2606:4700:4700::1111", allow: true},
		{addr: "2001:4860:4860::8888", allow: true},
		{addr: "2001:200::1", allow: true},
		{addr: "3ffe::1", allow: true},
		// IPv4-mapped: judged as the IPv4 address.
		{addr: "::ffff:127.0.0.1", want: "127.0.0.1 is in 127.0.0.0/8"},
		{addr: "::ffff:10.0.0.1", want: "10.0.0.0/8"},
		{addr: "::ffff:0.0.0.0", want: "0.0.0.0/8"},
		{addr: "::ffff:8.8.8.8", allow: true},
		// IPv4-compatible: denied outright.
		{addr: "::127.0.0.1", want: "::/96 (IPv4-compatible, deprecated, RFC 4291)"},
		{addr: "::8.8.8.8", want: "::/96"},
		// 6to4: judged by the embedded IPv4.
		{addr: "2002:7f00:1::", want: "embedded IPv4 127.0.0.1 (6to4) is in 127.0.0.0/8"},
		{addr: "2002:a00:1::1", want: "embedded IPv4 10.0.0.1 (6to4)"},
		{addr: "2002:c0a8:101:1::1", want: "192.168.0.0/16"},
		{addr: "2002:808:808::1", allow: true},
		// NAT64 well-known prefix: judged by the embedded IPv4.
		{addr: "64:ff9b::7f00:1", want: "embedded IPv4 127.0.0.1 (NAT64)"},
		{addr: "64:ff9b::a9fe:a9fe", want: "169.254.0.0/16"},
		{addr: "64:ff9b::808:808", allow: true},
		// Local-use NAT64: denied outright.
		{addr: "64:ff9b:1::1", want: "64:ff9b:1::/48 (local-use NAT64, RFC 8215)"},
		{addr: "64:ff9b:1::808:808", want: "64:ff9b:1::/48"},
		// Teredo: judged by the client (inverted) and the server IPv4.
		{addrV: teredo("65.54.227.120", "127.0.0.1", 40000), want: "embedded IPv4 127.0.0.1 (Teredo client)"},
		{addrV: teredo("65.54.227.120", "10.1.2.3", 40000), want: "10.0.0.0/8"},
		{addrV: teredo("192.168.0.1", "8.8.8.8", 40000), want: "embedded IPv4 192.168.0.1 (Teredo server)"},
		{addrV: teredo("65.54.227.120", "8.8.8.8", 40000), allow: true},
		// RFC 4380 Section 4's own example: client 192.0.2.45 port 40000.
		{addr: "2001:0:4136:e378:8000:63bf:3fff:fdd2", want: "embedded IPv4 192.0.2.45 (Teredo client)"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		a := tc.addrV
		name := a.String()
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
			name = tc.addr
		}
		t.Run(name, func(t *testing.T) {
			checkPeer(t, p, netip.AddrPortFrom(a, 3478), tc.allow, tc.want)
			checkPeer(t, p, netip.AddrPortFrom(a, 49152), tc.allow, tc.want)
		})
	}
}

func TestTeredoDecode(t *testing.T) {
	// RFC 4380 Section 4 example address.
	vs := canonical(netip.MustParseAddrPort("[2001:0:4136:e378:8000:63bf:3fff:fdd2]:1"))
	if vs.n != 2 || vs.judgeRaw {
		t.Fatalf("views %+v", vs)
	}
	if got := vs.emb[0].addr.String(); got != "65.54.227.120" {
		t.Errorf("server %s, want 65.54.227.120", got)
	}
	if got := vs.emb[1].addr.String(); got != "192.0.2.45" {
		t.Errorf("client %s, want 192.0.2.45", got)
	}
	if vs.emb[1].port != 40000 {
		t.Errorf("client port %d, want 40000", vs.emb[1].port)
	}
	if a := teredo("65.54.227.120", "192.0.2.45", 40000); a.String() != "2001:0:4136:e378:8000:63bf:3fff:fdd2" {
		t.Errorf("test helper builds %v", a)
	}
}

func TestInvalidAndPortZero(t *testing.T) {
	p := newPolicy(t, Config{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}})
	checkPeer(t, p, netip.AddrPort{}, false, "invalid address")
	checkPeer(t, p, netip.MustParseAddrPort("8.8.8.8:0"), false, "port 0")
	checkPeer(t, p, netip.MustParseAddrPort("8.8.8.8:1"), true, "")
}

func TestExplicitAllow(t *testing.T) {
	p := newPolicy(t, Config{Allow: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("203.0.113.0/24"), // the NAT lab's "internet"
		netip.MustParsePrefix("::ffff:10.1.0.0/112"),
		netip.MustParsePrefix("2000::/3"),
	}})
	for _, tc := range []struct {
		peer  string
		allow bool
		want  string
	}{
		{"127.0.0.1:80", true, ""},
		{"[::ffff:127.0.0.1]:80", true, ""},
		{"[2002:7f00:1::]:80", true, ""},
		{"[64:ff9b::7f00:1]:80", true, ""},
		{"203.0.113.7:3478", true, ""},
		{"10.1.2.3:80", true, ""},            // via the mapped prefix, read as 10.1.0.0/16
		{"[::ffff:10.1.2.3]:80", true, ""},   // same
		{"10.2.0.1:80", false, "10.0.0.0/8"}, // outside the allow
		// Allowing the IPv6 form does not clear the IPv4 it embeds.
		{"[2002:a02:1::]:80", false, "embedded IPv4 10.2.0.1 (6to4)"},
		// IPv4-compatible stays denied as ::/96 even when 127/8 is allowed.
		{"[::127.0.0.1]:80", false, "::/96"},
		{"[::1]:80", false, "::1/128"},
		{"192.168.0.1:80", false, "192.168.0.0/16"},
	} {
		checkPeer(t, p, netip.MustParseAddrPort(tc.peer), tc.allow, tc.want)
	}
	// Allowing ::/96 clears the IPv4-compatible form but still judges the
	// IPv4 it embeds.
	p = newPolicy(t, Config{Allow: []netip.Prefix{netip.MustParsePrefix("::/96")}})
	checkPeer(t, p, netip.MustParseAddrPort("[::8.8.8.8]:80"), true, "")
	checkPeer(t, p, netip.MustParseAddrPort("[::127.0.0.1]:80"), false, "embedded IPv4 127.0.0.1 (IPv4-compatible)")
}

func TestExplicitDeny(t *testing.T) {
	p := newPolicy(t, Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("8.8.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")},
		Deny: []netip.Prefix{
			netip.MustParsePrefix("8.8.8.0/24"),
			netip.MustParsePrefix("10.9.0.0/16"),
			netip.MustParsePrefix("2606:4700::/32"),
			netip.MustParsePrefix("2001::/32"), // Teredo as a whole
		},
	})
	for _, tc := range []struct {
		peer  string
		allow bool
		want  string
	}{
		{"8.8.8.8:53", false, "8.8.8.8 is in 8.8.8.0/24 (configured deny list)"},
		{"[::ffff:8.8.8.8]:53", false, "8.8.8.0/24"},
		{"[2002:808:808::]:53", false, "embedded IPv4 8.8.8.8 (6to4) is in 8.8.8.0/24"},
		{"[64:ff9b::808:808]:53", false, "8.8.8.0/24"},
		{"8.8.4.4:53", true, ""},
		{"10.1.0.1:53", true, ""},                   // explicit allow
		{"10.9.0.1:53", false, "10.9.0.0/16 (conf"}, // deny wins over allow
		{"[2606:4700:4700::1111]:53", false, "2606:4700::/32"},
		{"[2606:4701::1]:53", true, ""},
		{"[" + teredo("65.54.227.120", "1.1.1.1", 1).String() + "]:53", false, "2001::/32 (configured deny list)"},
	} {
		checkPeer(t, p, netip.MustParseAddrPort(tc.peer), tc.allow, tc.want)
	}
}

func TestValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"allow": {Allow: []netip.Prefix{{}}},
		"deny":  {Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}},
		"local": {LocalAddrs: []netip.Addr{{}}},
	} {
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: New error %v, want one naming %q", name, err, name)
		}
	}
}

func TestPrefixSetLongestFirst(t *testing.T) {
	s := newPrefixSet([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("10.1.2.3/16"), // masked to 10.1.0.0/16
		netip.MustParsePrefix("10.0.0.0/8"),  // duplicate
		netip.MustParsePrefix("2001:db8::/32"),
	})
	if len(s.list) != 3 {
		t.Fatalf("list %v", s.list)
	}
	if pf, ok := s.lookup(netip.MustParseAddr("10.1.9.9")); !ok || pf.String() != "10.1.0.0/16" {
		t.Errorf("lookup 10.1.9.9 = %v %v", pf, ok)
	}
	if pf, ok := s.lookup(netip.MustParseAddr("10.2.0.1")); !ok || pf.String() != "10.0.0.0/8" {
		t.Errorf("lookup 10.2.0.1 = %v %v", pf, ok)
	}
	if _, ok := s.lookup(netip.MustParseAddr("2001:db9::1")); ok {
		t.Errorf("lookup 2001:db9::1 matched")
	}
}

// TestFirstByteFilter checks the fast filter against the full tables for
// every first byte, with the lowest and highest address behind it.
func TestFirstByteFilter(t *testing.T) {
	for i := range 256 {
		for _, fill := range []byte{0x00, 0xff} {
			var b4 [4]byte
			var b6 [16]byte
			for j := range b4 {
				b4[j] = fill
			}
			for j := range b6 {
				b6[j] = fill
			}
			b4[0], b6[0] = byte(i), byte(i)
			for _, a := range []netip.Addr{netip.AddrFrom4(b4), netip.AddrFrom16(b6)} {
				table, outside := builtin4, false
				if a.Is6() {
					table, outside = builtin6, !notGlobal6.prefix.Contains(a)
				}
				want := outside
				for _, e := range table {
					want = want || e.prefix.Contains(a)
				}
				if _, got := lookupBuiltin(a); got != want {
					t.Errorf("%v: lookupBuiltin denied=%v, table says %v", a, got, want)
				}
			}
		}
	}
}
