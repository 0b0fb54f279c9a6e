package ice

import (
	"context"
	"net/netip"
	"strconv"
	"sync"

	"github.com/icebreaker-net/icebreaker/portmap"
)

// Origin says how a local candidate was found. It is not carried on the
// wire: a port-mapped candidate goes out as "typ srflx" (it is a
// server-reflexive address whose "server" is the router, RFC 8445, Section
// 5.1.1.2), so Origin is how tests and reports tell which one carried the
// data. Parsed (remote) candidates have OriginUnknown.
type Origin uint8

const (
	OriginUnknown Origin = iota // not a gathered candidate
	OriginHost                  // a host socket's address
	OriginSTUN                  // a STUN server's XOR-MAPPED-ADDRESS
	OriginTURN                  // a TURN allocation's relayed address
	OriginPortMap               // a port mapping on the router (package portmap)
)

func (o Origin) String() string {
	switch o {
	case OriginUnknown:
		return "unknown"
	case OriginHost:
		return "host"
	case OriginSTUN:
		return "stun"
	case OriginTURN:
		return "turn"
	case OriginPortMap:
		return "portmap"
	}
	return "Origin(" + strconv.Itoa(int(o)) + ")"
}

// portmapSlot holds the port mapping of one host socket, so that closing
// the socket deletes it. The mapping is made by a gathering goroutine that
// may finish after the socket was closed; set then closes it at once.
type portmapSlot struct {
	mu     sync.Mutex
	m      *portmap.Mapping
	closed bool
}

// set stores m, or closes it and returns false when the slot is closed.
func (p *portmapSlot) set(m *portmap.Mapping) bool {
	p.mu.Lock()
	if !p.closed {
		p.m = m
		p.mu.Unlock()
		return true
	}
	p.mu.Unlock()
	m.Close()
	return false
}

// close deletes the mapping, if any; later sets close theirs.
func (p *portmapSlot) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.drop()
}

// drop deletes the mapping, if any (bounded by the portmap.Config's
// Timeout).
func (p *portmapSlot) drop() {
	p.mu.Lock()
	m := p.m
	p.m = nil
	p.mu.Unlock()
	if m != nil {
		m.Close()
	}
}

// portmapped asks the router to map host socket s and returns the
// candidate of the mapping: the router's external address and the mapped
// port, with the priority and foundation of a server-reflexive candidate
// whose server is the gateway (RFC 8445, Sections 5.1.1.3 and 5.1.2).
func (a *Agent) portmapped(ctx context.Context, s *sock) (Candidate, error) {
	m, err := a.cfg.Gather.PortMapper.Map(ctx, s.addr)
	if err != nil {
		return Candidate{}, err
	}
	if !s.pm.set(m) {
		return Candidate{}, context.Canceled
	}
	return Candidate{
		Foundation: Foundation(TypeServerReflexive, s.addr.Addr(), m.Gateway(), TransportUDP),
		Component:  1,
		Transport:  TransportUDP,
		Priority:   Priority(TypeServerReflexive.Preference(), s.pref, 1),
		Addr:       m.External(),
		Type:       TypeServerReflexive,
		Related:    s.addr,
		Base:       s.addr,
		Origin:     OriginPortMap,
	}, nil
}

// markPortMapped gives the candidate of cands that a redundant port-mapped
// candidate c duplicates (same address and base: a port-preserving NAT
// mapped the socket to the same port the router gave) Origin
// OriginPortMap, since the mapping is what lets peers reach it.
func markPortMapped(cands []Candidate, c Candidate) {
	if c.Origin != OriginPortMap {
		return
	}
	for i := range cands {
		if cands[i].Addr == c.Addr && cands[i].BaseAddr() == c.Base && cands[i].Type == TypeServerReflexive {
			cands[i].Origin = OriginPortMap
		}
	}
}

// portmapGate holds a socket's port-mapped candidate until the socket's
// STUN answers are in, then passes it on unless the router is itself
// behind another NAT: when STUN servers saw the socket at addresses and
// none is the mapping's external address, the mapping leads to a router
// that is not the last NAT on the path, and offering it would only add a
// candidate that cannot be reached (double NAT). Owned by gatherServers'
// goroutine.
type portmapGate struct {
	a       *Agent
	pending map[*sock]int          // STUN answers still due per socket
	seen    map[*sock][]netip.Addr // STUN-mapped addresses per socket
	held    map[*sock]Candidate    // mapped candidates waiting for them
}

func newPortmapGate(a *Agent) *portmapGate {
	return &portmapGate{a: a, pending: map[*sock]int{}, seen: map[*sock][]netip.Addr{}, held: map[*sock]Candidate{}}
}

// expect records one STUN Binding started on s.
func (g *portmapGate) expect(s *sock) { g.pending[s]++ }

// stun records the end of one STUN Binding on s (c valid when ok) and
// returns a mapped candidate it releases.
func (g *portmapGate) stun(s *sock, c Candidate, ok bool) (Candidate, bool) {
	g.pending[s]--
	if ok {
		g.seen[s] = append(g.seen[s], c.Addr.Addr())
	}
	return g.release(s)
}

// mapped records the mapped candidate of s and returns it when it can go
// out already.
func (g *portmapGate) mapped(s *sock, c Candidate) (Candidate, bool) {
	g.held[s] = c
	return g.release(s)
}

func (g *portmapGate) release(s *sock) (Candidate, bool) {
	c, ok := g.held[s]
	if !ok || g.pending[s] > 0 {
		return Candidate{}, false
	}
	delete(g.held, s)
	seen := g.seen[s]
	for _, ip := range seen {
		if ip == c.Addr.Addr() {
			return c, true
		}
	}
	if len(seen) == 0 {
		return c, true // nothing to compare with
	}
	g.a.log.Info("ice: gather: port mapping not offered: the router's external address is not the one STUN servers see (double NAT)",
		"mapped", c.Addr, "stun", seen, "base", s.addr)
	s.pm.drop()
	return Candidate{}, false
}

// get returns the mapping, or nil.
func (p *portmapSlot) get() *portmap.Mapping {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m
}

// PortMappings returns the external addresses of the router port mappings
// the Agent holds, one per mapped host socket. A mapping's candidate may
// have been pruned as equal to a STUN one (a port-preserving NAT maps the
// socket to the same port): that candidate is then reachable through the
// mapping too.
func (a *Agent) PortMappings() []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range a.socks.filter(func(s *sock) bool { return s.pm.get() != nil }) {
		if m := s.pm.get(); m != nil {
			out = append(out, m.External())
		}
	}
	return out
}
