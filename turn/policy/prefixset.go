package policy

import (
	"net/netip"
	"slices"
)

// prefixSet answers "which prefix of the set covers this address" with one
// map lookup per distinct prefix length, longest first, so a long operator
// list costs no more than a short one. It is immutable after newPrefixSet
// and safe for concurrent reads.
type prefixSet struct {
	lens4, lens6 []int                // distinct prefix lengths, longest first
	byPrefix     map[netip.Prefix]int // masked prefix → index in list
	list         []netip.Prefix
}

// canonicalPrefix masks p and turns an IPv4-mapped prefix ::ffff:a.b.c.d/N
// with N >= 96 into the IPv4 prefix a.b.c.d/(N-96), since IPv4-mapped peers
// are judged as IPv4.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func newPrefixSet(list []netip.Prefix) prefixSet {
	s := prefixSet{byPrefix: make(map[netip.Prefix]int, len(list))}
	for _, p := range list {
		p = canonicalPrefix(p)
		if _, dup := s.byPrefix[p]; dup {
			continue
		}
		s.byPrefix[p] = len(s.list)
		s.list = append(s.list, p)
		if p.Addr().Is4() {
			s.lens4 = append(s.lens4, p.Bits())
		} else {
			s.lens6 = append(s.lens6, p.Bits())
		}
	}
	for _, l := range []*[]int{&s.lens4, &s.lens6} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
		slices.Reverse(*l)
	}
	return s
}

// lookup returns the longest prefix of the set that covers a (zoneless and
// unmapped), or ok=false. It allocates nothing.
func (s *prefixSet) lookup(a netip.Addr) (p netip.Prefix, ok bool) {
	lens := s.lens6
	if a.Is4() {
		lens = s.lens4
	}
	for _, l := range lens {
		pf, err := a.Prefix(l)
		if err != nil {
			continue
		}
		if i, hit := s.byPrefix[pf]; hit {
			return s.list[i], true
		}
	}
	return netip.Prefix{}, false
}
