package ice

import (
	"hash/fnv"
	"net/netip"
	"strconv"
)

// Recommended type preferences. RFC 8445, Section 5.1.2.2.
const (
	TypePrefHost            = 126
	TypePrefPeerReflexive   = 110
	TypePrefServerReflexive = 100
	TypePrefRelay           = 0
)

// MaxLocalPreference is the highest local preference, recommended for an
// agent with a single IP address. RFC 8445, Section 5.1.2.2.
const MaxLocalPreference = 65535

// Preference returns the recommended type preference of t (RFC 8445,
// Section 5.1.2.2): host 126, peer-reflexive 110, server-reflexive 100,
// relayed 0. Unknown types get 0.
func (t CandidateType) Preference() uint32 {
	switch t {
	case TypeHost:
		return TypePrefHost
	case TypePeerReflexive:
		return TypePrefPeerReflexive
	case TypeServerReflexive:
		return TypePrefServerReflexive
	}
	return TypePrefRelay
}

// Priority computes a candidate priority, RFC 8445, Section 5.1.2.1:
//
//	priority = (2^24)*(type preference) + (2^8)*(local preference) + (256 - component ID)
//
// Out-of-range arguments are clamped rather than allowed to spill into the
// neighbouring field: typePref to 126, localPref to 65535, component to 1..256.
func Priority(typePref, localPref uint32, component uint16) uint32 {
	typePref = min(typePref, 126)
	localPref = min(localPref, MaxLocalPreference)
	component = max(min(component, 256), 1)
	return typePref<<24 | localPref<<8 | uint32(256-component)
}

// TCPLocalPreference returns the local preference of a TCP candidate, RFC
// 6544, Section 4.2:
//
//	local preference = (2^13) * direction-pref + other-pref
//
// with the recommended direction preferences: for host and relayed candidates
// active 6, passive 4, S-O 2; for reflexive candidates (which need the NAT's
// help) S-O 6, active 4, passive 2. otherPref (clamped to 0..8191) orders
// interfaces, as LocalPreferences does for UDP.
func TCPLocalPreference(typ CandidateType, tcpType TCPType, otherPref uint32) uint32 {
	var dir uint32
	reflexive := typ == TypeServerReflexive || typ == TypePeerReflexive
	switch tcpType {
	case TCPTypeActive:
		dir = 6
		if reflexive {
			dir = 4
		}
	case TCPTypePassive:
		dir = 4
		if reflexive {
			dir = 2
		}
	case TCPTypeSO:
		dir = 2
		if reflexive {
			dir = 6
		}
	}
	return dir<<13 | min(otherPref, 8191)
}

// LocalPreferences assigns local preferences to a host's addresses (RFC 8445,
// Section 5.1.2.1), given in the order the caller prefers them (typically
// interface order). The result has one preference per address, in the same
// order, all distinct and counting down from 65535, so that candidates of the
// same type and component never tie.
//
// Following RFC 8421, Section 4, the two address families are interlaced,
// IPv6 first: v6, v4, v6, v4, ... and whichever family has addresses left
// continues alone. A broken IPv6 path then delays the first IPv4 check by
// one pacing interval, not by all the IPv6 pairs. Loopback and link-local
// addresses, which rarely carry a useful path, come after all others (still
// interlaced among themselves). IPv4-mapped IPv6 addresses count as IPv4.
func LocalPreferences(addrs []netip.Addr) []uint32 {
	prefs := make([]uint32, len(addrs))
	next := uint32(MaxLocalPreference)
	assign := func(minor bool) {
		var v6, v4 []int
		for i, a := range addrs {
			if isMinorAddr(a) != minor {
				continue
			}
			if a.Unmap().Is4() {
				v4 = append(v4, i)
			} else {
				v6 = append(v6, i)
			}
		}
		for k := 0; k < max(len(v6), len(v4)); k++ {
			if k < len(v6) {
				prefs[v6[k]] = next
				next--
			}
			if k < len(v4) {
				prefs[v4[k]] = next
				next--
			}
		}
	}
	assign(false)
	assign(true)
	return prefs
}

func isMinorAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast()
}

// Foundation returns the foundation of a local candidate, RFC 8445, Section
// 5.1.1.3: two candidates share a foundation exactly when they have the same
// type, the same base IP address (ports do not matter), the same STUN or TURN
// server IP address (pass the zero Addr for host candidates) and the same
// transport protocol. The result is deterministic across runs and processes:
// a 64-bit FNV-1a hash of those four, in base 36 (at most 13 ice-chars).
// IPv4-mapped addresses are unmapped first.
func Foundation(typ CandidateType, base, server netip.Addr, transport Transport) string {
	h := fnv.New64a()
	var buf [64]byte
	b := append(buf[:0], byte(typ), byte(transport))
	b = appendAddrKey(b, base)
	b = appendAddrKey(b, server)
	h.Write(b)
	return strconv.FormatUint(h.Sum64(), 36)
}

// appendAddrKey writes an unambiguous, length-prefixed form of a.
func appendAddrKey(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	s := a.AsSlice() // nil for the zero Addr
	b = append(b, byte(len(s)))
	b = append(b, s...)
	z := a.Zone()
	b = append(b, byte(len(z)))
	return append(b, z...)
}

// PruneRedundant removes redundant local candidates, RFC 8445, Section
// 5.1.3: a candidate is redundant when another one has the same transport
// address (address, port, transport protocol and component) and the same
// base; of those the one with the highest priority stays (the first one on a
// tie). It returns a new slice in the input's order and leaves cands as is.
func PruneRedundant(cands []Candidate) []Candidate {
	type key struct {
		addr, base netip.AddrPort
		host       string
		transport  Transport
		component  uint16
	}
	best := make(map[key]int, len(cands))
	for i := range cands {
		c := &cands[i]
		k := key{c.Addr, c.BaseAddr(), c.Host, c.Transport, c.Component}
		if j, ok := best[k]; !ok || c.Priority > cands[j].Priority {
			best[k] = i
		}
	}
	out := make([]Candidate, 0, len(best))
	for i := range cands {
		c := &cands[i]
		if best[key{c.Addr, c.BaseAddr(), c.Host, c.Transport, c.Component}] == i {
			out = append(out, *c)
		}
	}
	return out
}
