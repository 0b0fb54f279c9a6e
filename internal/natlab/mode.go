package natlab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Mode selects the behaviour of one NAT (side A or side B) of a [Lab].
//
// The RFC 4787 mapping and filtering behaviour of each mode is listed at the
// constants. The zero value ("") means [EIM].
type Mode string

// NAT modes. Each NAT masquerades UDP and TCP leaving its wan0 interface and
// drops unsolicited new inbound traffic addressed to the NAT itself; the modes
// differ in port allocation and in which inbound UDP flows are let through.
const (
	// None puts the host directly on the "internet": lanX gets the public
	// address (NatAPublic or NatBPublic) on the wan bridge and no NAT
	// namespace is created. Mapping and filtering are trivially
	// endpoint-independent (there is no NAT and no firewall).
	None Mode = "none"

	// EIM is plain "masquerade": endpoint-independent mapping (the source
	// port is preserved when free) and address-and-port-dependent
	// filtering. Old name: port-restricted cone.
	EIM Mode = "eim"

	// AddrRestricted is "masquerade" plus an inbound dnat of new UDP flows
	// whose source address was already contacted from the same local port:
	// endpoint-independent mapping, address-dependent filtering.
	// Old name: restricted cone. Assumes one host behind the NAT.
	AddrRestricted Mode = "addr-restricted"

	// FullCone is "masquerade" plus an inbound dnat of every new UDP flow to
	// ports 1024-65535 to the LAN host: endpoint-independent mapping and
	// endpoint-independent filtering. Old name: full cone. Assumes one
	// host behind the NAT.
	FullCone Mode = "fullcone"

	// Random is "masquerade random": address-and-port-dependent mapping (a
	// new port per destination) and address-and-port-dependent filtering.
	// Old name: symmetric.
	Random Mode = "random"

	// FullyRandom is "masquerade fully-random": like Random, with a fully
	// random port for every mapping.
	FullyRandom Mode = "fully-random"

	// Symmetric is the classic (RFC 3489) name of Random.
	Symmetric = Random
)

// String returns the name accepted by [ParseMode]; the zero Mode prints as "eim".
func (m Mode) String() string {
	if m == "" {
		return string(EIM)
	}
	return string(m)
}

// ParseMode parses a mode name: "none", "eim", "addr-restricted", "fullcone",
// "random" or "fully-random" (case-insensitive; "symmetric" is accepted as an
// alias of "random").
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case None, EIM, AddrRestricted, FullCone, Random, FullyRandom:
		return m, nil
	case "symmetric":
		return Random, nil
	}
	return "", fmt.Errorf("natlab: unknown NAT mode %q (want none, eim, addr-restricted, fullcone, random or fully-random)", s)
}

// norm maps the zero value to EIM and reports whether m is a known mode.
func (m Mode) norm() (Mode, bool) {
	if m == "" {
		return EIM, true
	}
	switch m {
	case None, EIM, AddrRestricted, FullCone, Random, FullyRandom:
		return m, true
	}
	return m, false
}

// nftRules returns the nftables ruleset (for "nft -f -") of a NAT namespace in
// mode m whose single LAN host is lanHost. The NAT's wan interface is wan0, its
// LAN interface lan0. m must be normalised and not None. A valid snatTo makes
// the NAT translate outbound flows to that address instead of wan0's own
// (masquerade) address, keeping the mode's port allocation.
func nftRules(m Mode, lanHost string, snatTo netip.Addr) string {
	var b strings.Builder
	b.WriteString("flush ruleset\ntable ip natlab {\n")
	if m == AddrRestricted {
		// {remote address . local port} of every outbound UDP flow; inbound
		// new flows from a contacted address to that port are let in.
		b.WriteString("\tset contacted { type ipv4_addr . inet_service; flags dynamic,timeout; timeout 120s; }\n")
		b.WriteString("\tchain forward { type filter hook forward priority filter; policy accept;\n")
		b.WriteString("\t\tiifname \"lan0\" ip daddr != 10.0.0.0/8 meta l4proto udp update @contacted { ip daddr . udp sport }\n")
		b.WriteString("\t}\n")
	}
	// Pitfall 1: unsolicited inbound addressed to the NAT itself is dropped
	// before conntrack confirmation, so it leaves no entry that could make
	// masquerade pick another port for a later outbound flow.
	b.WriteString("\tchain input { type filter hook input priority filter; policy accept;\n")
	b.WriteString("\t\tiifname \"wan0\" ct state new drop\n")
	b.WriteString("\t}\n")
	switch m {
	case AddrRestricted:
		fmt.Fprintf(&b, "\tchain prerouting { type nat hook prerouting priority dstnat; policy accept;\n"+
			"\t\tiifname \"wan0\" ip saddr . udp dport @contacted dnat ip to %s\n\t}\n", lanHost)
	case FullCone:
		fmt.Fprintf(&b, "\tchain prerouting { type nat hook prerouting priority dstnat; policy accept;\n"+
			"\t\tiifname \"wan0\" udp dport 1024-65535 dnat ip to %s\n\t}\n", lanHost)
	}
	masq := "masquerade"
	if snatTo.IsValid() {
		masq = "snat ip to " + snatTo.String()
	}
	switch m {
	case Random:
		masq += " random"
	case FullyRandom:
		masq += " fully-random"
	}
	fmt.Fprintf(&b, "\tchain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"+
		"\t\toifname \"wan0\" %s\n\t}\n", masq)
	b.WriteString("}\n")
	return b.String()
}
