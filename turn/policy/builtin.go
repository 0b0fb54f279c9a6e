package policy

import "net/netip"

// builtin is one range the policy denies by default.
type builtin struct {
	prefix netip.Prefix
	what   string // "private, RFC 1918": the range's name and its RFC
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// builtin4 lists the IPv4 ranges denied by default, most specific first, so
// the first match gives the most precise reason. IANA IPv4 Special-Purpose
// Address Registry (RFC 6890) plus multicast and the reserved class E.
var builtin4 = []builtin{
	{mustPrefix("255.255.255.255/32"), "limited broadcast, RFC 919"},
	{mustPrefix("192.0.0.0/24"), "IETF protocol assignments, RFC 6890"},
	{mustPrefix("192.0.2.0/24"), "documentation TEST-NET-1, RFC 5737"},
	{mustPrefix("192.88.99.0/24"), "6to4 relay anycast, RFC 7526"},
	{mustPrefix("198.51.100.0/24"), "documentation TEST-NET-2, RFC 5737"},
	{mustPrefix("203.0.113.0/24"), "documentation TEST-NET-3, RFC 5737"},
	{mustPrefix("169.254.0.0/16"), "link-local, RFC 3927"},
	{mustPrefix("192.168.0.0/16"), "private, RFC 1918"},
	{mustPrefix("198.18.0.0/15"), "benchmarking, RFC 2544"},
	{mustPrefix("172.16.0.0/12"), "private, RFC 1918"},
	{mustPrefix("100.64.0.0/10"), "shared address space, RFC 6598"},
	{mustPrefix("0.0.0.0/8"), "\"this network\", RFC 791"},
	{mustPrefix("10.0.0.0/8"), "private, RFC 1918"},
	{mustPrefix("127.0.0.0/8"), "loopback, RFC 1122"},
	{mustPrefix("224.0.0.0/4"), "multicast, RFC 5771"},
	{mustPrefix("240.0.0.0/4"), "reserved, RFC 1112"},
}

// builtin6 lists the IPv6 ranges denied by default, most specific first.
// IANA IPv6 Special-Purpose Address Registry (RFC 6890). The embedding
// prefixes judged by their IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64
// 64:ff9b::/96) never reach this table; see canonical.
var builtin6 = []builtin{
	{mustPrefix("::/128"), "unspecified, RFC 4291"},
	{mustPrefix("::1/128"), "loopback, RFC 4291"},
	{mustPrefix("::/96"), "IPv4-compatible, deprecated, RFC 4291"},
	{mustPrefix("100::/64"), "discard-only, RFC 6666"},
	{mustPrefix("64:ff9b:1::/48"), "local-use NAT64, RFC 8215"},
	{mustPrefix("2001:db8::/32"), "documentation, RFC 3849"},
	{mustPrefix("2001::/23"), "IETF protocol assignments, RFC 2928"},
	{mustPrefix("3fff::/20"), "documentation, RFC 9637"},
	{mustPrefix("5f00::/16"), "SRv6 SIDs, RFC 9602"},
	{mustPrefix("fe80::/10"), "link-local, RFC 4291"},
	{mustPrefix("fec0::/10"), "site-local, deprecated, RFC 3879"},
	{mustPrefix("ff00::/8"), "multicast, RFC 4291"},
	{mustPrefix("fc00::/7"), "unique local, RFC 4193"},
}

// notGlobal6 is the reason for an IPv6 address outside the global unicast
// space that no more specific entry names.
var notGlobal6 = builtin{mustPrefix("2000::/3"), "outside global unicast, RFC 4291"}

// maybe4 and maybe6 flag the first bytes that some built-in range (or, for
// IPv6, the space outside 2000::/3) can cover, so most public addresses skip
// the table scan. Derived from the tables, so they cannot disagree.
var maybe4, maybe6 = firstByteFilter(builtin4, nil), firstByteFilter(builtin6, &notGlobal6)

func firstByteFilter(table []builtin, outside *builtin) (f [256]bool) {
	for _, e := range table {
		first := e.prefix.Addr().AsSlice()[0]
		span := 1
		if e.prefix.Bits() < 8 {
			span = 1 << (8 - e.prefix.Bits())
		}
		for i := range span {
			f[int(first)+i] = true
		}
	}
	if outside != nil {
		in := firstByteFilter([]builtin{*outside}, nil)
		for i := range f {
			f[i] = f[i] || !in[i]
		}
	}
	return f
}

// lookupBuiltin returns the built-in range that denies a (zoneless, unmapped)
// address, or ok=false.
func lookupBuiltin(a netip.Addr) (b builtin, ok bool) {
	if a.Is4() {
		if !maybe4[a.As4()[0]] {
			return builtin{}, false
		}
		for _, e := range builtin4 {
			if e.prefix.Contains(a) {
				return e, true
			}
		}
		return builtin{}, false
	}
	if !maybe6[a.As16()[0]] {
		return builtin{}, false
	}
	for _, e := range builtin6 {
		if e.prefix.Contains(a) {
			return e, true
		}
	}
	if !notGlobal6.prefix.Contains(a) {
		return notGlobal6, true
	}
	return builtin{}, false
}

// embKind says how a judged address was derived from the peer address.
type embKind uint8

const (
	embNone embKind = iota
	embMapped
	embCompat
	emb6to4
	embTeredoServer
	embTeredoClient
	embNAT64
)

func (k embKind) String() string {
	switch k {
	case embMapped:
		return "IPv4-mapped"
	case embCompat:
		return "IPv4-compatible"
	case emb6to4:
		return "6to4"
	case embTeredoServer:
		return "Teredo server"
	case embTeredoClient:
		return "Teredo client"
	case embNAT64:
		return "NAT64"
	}
	return ""
}

// view is one address a peer address reaches, with the port it reaches it on.
type view struct {
	addr netip.Addr
	port uint16
	kind embKind
	// own reports whether the view is compared with the own addresses. A
	// Teredo server address is not: traffic reaches it on no known port.
	own bool
}

// views is a canonicalised peer address: the address as written (raw, with
// IPv4-mapped already unmapped) and up to two embedded IPv4 addresses.
type views struct {
	raw view
	// judgeRaw reports whether raw is judged by the built-in table. It is
	// false for the embedding forms that are judged only by the IPv4 address
	// they embed (6to4, Teredo, NAT64).
	judgeRaw bool
	n        int
	emb      [2]view
}

// nat64WKP is the first 12 bytes of the NAT64 well-known prefix 64:ff9b::/96.
var nat64WKP = [12]byte{0x00, 0x64, 0xff, 0x9b}

// canonical splits a peer address into the addresses it reaches. RFC 4291
// Section 2.5.5, RFC 3056 Section 2, RFC 4380 Section 4, RFC 6052 Section 2.1.
func canonical(peer netip.AddrPort) views {
	a := peer.Addr().WithZone("")
	port := peer.Port()
	if a.Is4In6() {
		return views{raw: view{a.Unmap(), port, embMapped, true}, judgeRaw: true}
	}
	v := views{raw: view{a, port, embNone, true}, judgeRaw: true}
	if a.Is4() {
		return v
	}
	b := a.As16()
	switch {
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0:
		// Teredo 2001::/32: server IPv4 in bits 32-63, client port in bits
		// 80-95 and client IPv4 in bits 96-127, both bit-inverted.
		v.judgeRaw = false
		v.n = 2
		v.emb[0] = view{netip.AddrFrom4([4]byte(b[4:8])), 0, embTeredoServer, false}
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		cport := ^(uint16(b[10])<<8 | uint16(b[11]))
		v.emb[1] = view{netip.AddrFrom4(client), cport, embTeredoClient, true}
	case b[0] == 0x20 && b[1] == 0x02:
		// 6to4 2002::/16: the IPv4 address in bits 16-47.
		v.n = 1
		v.emb[0] = view{netip.AddrFrom4([4]byte(b[2:6])), port, emb6to4, true}
	case [12]byte(b[:12]) == nat64WKP:
		v.judgeRaw = false
		v.n = 1
		v.emb[0] = view{netip.AddrFrom4([4]byte(b[12:16])), port, embNAT64, true}
	case [12]byte(b[:12]) == [12]byte{} && !a.IsUnspecified() && !a.IsLoopback():
		// IPv4-compatible ::a.b.c.d: denied as ::/96 and judged by a.b.c.d.
		v.n = 1
		v.emb[0] = view{netip.AddrFrom4([4]byte(b[12:16])), port, embCompat, true}
	}
	return v
}
