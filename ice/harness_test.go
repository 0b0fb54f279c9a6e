package ice

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// epoch is the injected clock's start.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sent is a packet the harness saw leave an agent, for assertions.
type sent struct {
	at       time.Time
	agent    int // 0 = A, 1 = B
	from, to netip.AddrPort
	msg      stun.Type
	id       stun.TransactionID
	useCand  bool
	errCode  int
}

// flight is a packet on its way.
type flight struct {
	at    time.Time
	dst   int
	local netip.AddrPort // the receiving base
	from  netip.AddrPort // source as the receiver sees it
	pkt   []byte
}

// nat is a NAT in front of one agent: packets from a base to the other side
// leave from a public address; packets to a public address reach its base.
// Symmetric NATs map each (base, destination) to its own port.
type nat struct {
	public    netip.Addr
	symmetric bool
	next      uint16
	out       map[[2]netip.AddrPort]netip.AddrPort // (base, dst) -> public
	in        map[netip.AddrPort]netip.AddrPort    // public -> base
}

func newNAT(public string, symmetric bool) *nat {
	return &nat{public: netip.MustParseAddr(public), symmetric: symmetric, next: 40000,
		out: map[[2]netip.AddrPort]netip.AddrPort{}, in: map[netip.AddrPort]netip.AddrPort{}}
}

func (n *nat) outbound(base, dst netip.AddrPort) netip.AddrPort {
	k := [2]netip.AddrPort{base, dst}
	if !n.symmetric {
		k[1] = netip.AddrPort{}
	}
	if p, ok := n.out[k]; ok {
		return p
	}
	p := netip.AddrPortFrom(n.public, n.next)
	n.next++
	n.out[k] = p
	n.in[p] = base
	return p
}

// harness wires two Checkers back to back with an injected clock.
type harness struct {
	t      testing.TB
	now    time.Time
	agents [2]*Checker
	bases  [2][]netip.AddrPort // each agent's bases, reachable by address
	nats   [2]*nat             // nil: no NAT
	// drop reports whether to lose a packet (from, to as sent).
	drop func(from, to netip.AddrPort) bool
	// latency of a packet (from, to as sent); nil means 0.
	latency func(from, to netip.AddrPort) time.Duration
	// rewriteFrom changes the source the receiver sees, after the NAT.
	rewriteFrom func(from netip.AddrPort) netip.AddrPort
	inflight    []flight
	log         []sent
	errs        [2]int // Handle errors per receiving agent
	nexts       [2]time.Time
}

func newHarness(t testing.TB, a, b *Checker, aBases, bBases []string) *harness {
	h := &harness{t: t, now: epoch, agents: [2]*Checker{a, b}}
	for _, s := range aBases {
		h.bases[0] = append(h.bases[0], ap(s))
	}
	for _, s := range bBases {
		h.bases[1] = append(h.bases[1], ap(s))
	}
	return h
}

// route finds which agent and base a packet to dst reaches.
func (h *harness) route(dst netip.AddrPort) (int, netip.AddrPort, bool) {
	for i := range 2 {
		if slices.Contains(h.bases[i], dst) {
			return i, dst, true
		}
		if h.nats[i] != nil {
			if base, ok := h.nats[i].in[dst]; ok {
				return i, base, true
			}
		}
	}
	return 0, netip.AddrPort{}, false
}

// emit records and routes one agent's packets.
func (h *harness) emit(agent int, outs []Outgoing) {
	for _, o := range outs {
		var m stun.Message
		if err := m.Parse(o.Packet); err != nil {
			h.t.Fatalf("agent %d sent a bad packet: %v", agent, err)
		}
		s := sent{at: h.now, agent: agent, from: o.From, to: o.To, msg: m.Type, id: m.TransactionID,
			useCand: m.Has(stun.AttrUseCandidate)}
		if m.Type.Class == stun.ClassError {
			s.errCode, _, _ = m.ErrorCode()
		}
		src := o.From
		if n := h.nats[agent]; n != nil {
			src = n.outbound(o.From, o.To)
		}
		if h.rewriteFrom != nil {
			src = h.rewriteFrom(src)
		}
		dst, local, ok := h.route(o.To)
		if ok && dst != agent && (h.drop == nil || !h.drop(o.From, o.To)) {
			var lat time.Duration
			if h.latency != nil {
				lat = h.latency(o.From, o.To)
			}
			h.inflight = append(h.inflight, flight{at: h.now.Add(lat), dst: dst, local: local, from: src, pkt: o.Packet})
		}
		h.log = append(h.log, s)
	}
}

// settle runs both agents at h.now until nothing more happens at this
// instant.
func (h *harness) settle() {
	for range 1000 {
		busy := false
		for i, a := range h.agents {
			out, next := a.Next(h.now)
			h.nexts[i] = next
			if len(out) > 0 {
				busy = true
				h.emit(i, out)
			}
		}
		keep := h.inflight[:0]
		for _, f := range h.inflight {
			if f.at.After(h.now) {
				keep = append(keep, f)
				continue
			}
			busy = true
			if err := h.agents[f.dst].Handle(f.pkt, f.local, f.from, h.now); err != nil {
				h.errs[f.dst]++
			}
		}
		h.inflight = keep
		if !busy {
			return
		}
	}
	h.t.Fatalf("at %v: the agents never settle", h.now.Sub(epoch))
}

// advance moves the clock to the next event; false when there is none.
func (h *harness) advance() bool {
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, n := range h.nexts {
		at(n)
	}
	for _, f := range h.inflight {
		at(f.at)
	}
	if next.IsZero() {
		return false
	}
	if !next.After(h.now) {
		h.t.Fatalf("at %v: an agent asks to run again at %v without progress", h.now.Sub(epoch), next.Sub(epoch))
	}
	h.now = next
	return true
}

// run settles and advances until done returns true (h.now is then the
// time it became true) or the clock passes limit.
func (h *harness) run(limit time.Duration, done func() bool) bool {
	for {
		h.settle()
		if done() {
			return true
		}
		if h.now.Sub(epoch) > limit || !h.advance() {
			return false
		}
	}
}

func (h *harness) connected() bool {
	return h.agents[0].State() == StateConnected && h.agents[1].State() == StateConnected
}

// requests returns the first sends of the checks agent sent (no
// retransmissions), in order.
func (h *harness) requests(agent int) []sent {
	var out []sent
	seen := map[stun.TransactionID]bool{}
	for _, s := range h.log {
		if s.agent == agent && s.msg == stun.BindingRequest && !seen[s.id] {
			seen[s.id] = true
			out = append(out, s)
		}
	}
	return out
}

// host builds a local host candidate with its base.
func host(f, addr string, localPref uint32) Candidate {
	c := cand(f, TypeHost, addr, localPref)
	c.Base = c.Addr
	return c
}

// relay builds a relayed candidate; its base is the relayed address.
func relay(f, addr string) Candidate {
	c := cand(f, TypeRelay, addr, 65535)
	c.Base = c.Addr
	return c
}

// remote strips the local-only Base.
func remote(cs ...Candidate) []Candidate {
	out := slices.Clone(cs)
	for i := range out {
		out[i].Base = netip.AddrPort{}
	}
	return out
}

func pairCfg(controllingA bool) (CheckerConfig, CheckerConfig) {
	a := CheckerConfig{Controlling: controllingA, TieBreaker: 2, LocalUfrag: "ufA", LocalPwd: "passwordA-0123456789ab",
		RemoteUfrag: "ufB", RemotePwd: "passwordB-0123456789ab"}
	b := CheckerConfig{Controlling: !controllingA, TieBreaker: 1, LocalUfrag: "ufB", LocalPwd: "passwordB-0123456789ab",
		RemoteUfrag: "ufA", RemotePwd: "passwordA-0123456789ab"}
	return a, b
}

func mustChecker(t testing.TB, l, r []Candidate, cfg CheckerConfig) *Checker {
	t.Helper()
	c, err := NewChecker(l, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
