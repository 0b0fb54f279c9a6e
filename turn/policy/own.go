package policy

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// ownSet holds the server's own transport addresses. Readers index a
// two-level table by port (high byte, low byte) and scan the handful of
// addresses on that port; nothing on the read path locks or allocates.
// Writers hold mu and replace one port's address slice copy-on-write, so
// adding or removing one relay address costs O(addresses on that port), not
// O(all addresses).
type ownSet struct {
	pages [256]atomic.Pointer[ownPage]
	local atomic.Pointer[map[netip.Addr]struct{}] // local interface addresses, for wildcards

	mu         sync.Mutex                  // guards the fields below; writers only
	all        map[netip.AddrPort]struct{} // every own address, normalised
	fixedLocal bool                        // local set came from config or SetLocalAddrs
}

type ownPage [256]atomic.Pointer[[]netip.Addr]

// normalAddr drops the zone and unmaps, so own and peer addresses compare
// alike.
func normalAddr(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// contains reports whether address a on port is one of the own addresses,
// directly or through a wildcard own address on that port.
func (o *ownSet) contains(a netip.Addr, port uint16) bool {
	pg := o.pages[port>>8].Load()
	if pg == nil {
		return false
	}
	lp := pg[port&0xff].Load()
	if lp == nil {
		return false
	}
	for _, x := range *lp {
		if x == a {
			return true
		}
		// 0.0.0.0 covers the IPv4 local addresses; [::] covers both families
		// (a dual-stack socket receives IPv4 too).
		if x.IsUnspecified() && (x.Is6() || a.Is4()) && o.isLocal(a) {
			return true
		}
	}
	return false
}

// isLocal reports whether a is an address of this host: loopback,
// unspecified, or a local interface address.
func (o *ownSet) isLocal(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	m := o.local.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[a]
	return ok
}

func (o *ownSet) setLocalLocked(addrs []netip.Addr) {
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			m[normalAddr(a)] = struct{}{}
		}
	}
	o.local.Store(&m)
}

// refreshLocalLocked reads the interface addresses when a wildcard is being
// added and no fixed list was configured. On error the previous set (or
// none) stays: loopback and unspecified are covered regardless.
func (o *ownSet) refreshLocalLocked() {
	if o.fixedLocal {
		return
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	addrs := make([]netip.Addr, 0, len(ifas))
	for _, ifa := range ifas {
		var ip net.IP
		switch v := ifa.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			addrs = append(addrs, a)
		}
	}
	o.setLocalLocked(addrs)
}

// normalOwn returns the normalised own address, or ok=false for one that
// can never match a peer (invalid address or port 0).
func normalOwn(a netip.AddrPort) (netip.AddrPort, bool) {
	if !a.Addr().IsValid() || a.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(normalAddr(a.Addr()), a.Port()), true
}

func (o *ownSet) addLocked(a netip.AddrPort) {
	if _, dup := o.all[a]; dup {
		return
	}
	if o.all == nil {
		o.all = make(map[netip.AddrPort]struct{})
	}
	o.all[a] = struct{}{}
	port := a.Port()
	pg := o.pages[port>>8].Load()
	if pg == nil {
		pg = new(ownPage)
		o.pages[port>>8].Store(pg)
	}
	var next []netip.Addr
	if lp := pg[port&0xff].Load(); lp != nil {
		next = slices.Clone(*lp)
	}
	next = append(next, a.Addr())
	pg[port&0xff].Store(&next)
}

func (o *ownSet) removeLocked(a netip.AddrPort) {
	if _, ok := o.all[a]; !ok {
		return
	}
	delete(o.all, a)
	port := a.Port()
	pg := o.pages[port>>8].Load()
	lp := pg[port&0xff].Load()
	next := make([]netip.Addr, 0, len(*lp))
	for _, x := range *lp {
		if x != a.Addr() {
			next = append(next, x)
		}
	}
	if len(next) == 0 {
		pg[port&0xff].Store(nil) // the page itself stays: at most 256 of 2 KiB
		return
	}
	pg[port&0xff].Store(&next)
}

func (o *ownSet) set(addrs []netip.AddrPort) {
	o.mu.Lock()
	defer o.mu.Unlock()
	want := make(map[netip.AddrPort]struct{}, len(addrs))
	wildcard := false
	for _, a := range addrs {
		if n, ok := normalOwn(a); ok {
			want[n] = struct{}{}
			wildcard = wildcard || n.Addr().IsUnspecified()
		}
	}
	if wildcard {
		o.refreshLocalLocked()
	}
	// Add before removing, so an address kept across the call is never
	// missing for a concurrent reader.
	for a := range want {
		o.addLocked(a)
	}
	for a := range o.all {
		if _, keep := want[a]; !keep {
			o.removeLocked(a)
		}
	}
}

func (o *ownSet) add(a netip.AddrPort) {
	n, ok := normalOwn(a)
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n.Addr().IsUnspecified() {
		o.refreshLocalLocked()
	}
	o.addLocked(n)
}

func (o *ownSet) remove(a netip.AddrPort) {
	n, ok := normalOwn(a)
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removeLocked(n)
}

func (o *ownSet) list() []netip.AddrPort {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(o.all))
	for a := range o.all {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}
