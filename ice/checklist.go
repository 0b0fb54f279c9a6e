package ice

import (
	"fmt"
	"net/netip"
	"slices"
)

// DefaultMaxPairs is the default limit on the pairs of a check list. RFC
// 8445, Section 6.1.2.5.
const DefaultMaxPairs = 100

// ChecklistConfig configures a Checklist. The zero value means the defaults.
type ChecklistConfig struct {
	// MaxPairs limits the number of pairs; the lowest-priority pairs are
	// dropped past it. 0 means DefaultMaxPairs.
	MaxPairs int
}

// Validate reports a configuration error.
func (c ChecklistConfig) Validate() error {
	if c.MaxPairs < 0 {
		return fmt.Errorf("ice: ChecklistConfig.MaxPairs %d is negative", c.MaxPairs)
	}
	return nil
}

// Checklist is the check list of one data stream, RFC 8445, Section 6.1.2:
// candidate pairs in decreasing priority order with their states. It does no
// I/O and reads no clock. It is not safe for concurrent use: one owner (the
// agent's run loop) drives it. Its zero value is an empty list.
type Checklist struct {
	controlling bool
	pairs       []*Pair
}

// NewChecklist forms the check list from the local and remote candidates
// (RFC 8445, Section 6.1.2): it pairs them (Section 6.1.2.2), computes pair
// priorities for the role and sorts (Section 6.1.2.3), prunes (Section
// 6.1.2.4), and keeps the cfg.MaxPairs best pairs (Section 6.1.2.5). Every
// pair starts Frozen; call SetInitialStates on the first check list.
//
// Local candidates should carry their Base. The candidates are copied.
func NewChecklist(locals, remotes []Candidate, controlling bool, cfg ChecklistConfig) (*Checklist, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	limit := cfg.MaxPairs
	if limit == 0 {
		limit = DefaultMaxPairs
	}
	cl := &Checklist{controlling: controlling}
	for i := range locals {
		for j := range remotes {
			if canPair(&locals[i], &remotes[j]) {
				p := &Pair{Local: locals[i], Remote: remotes[j]}
				p.computePriority(controlling)
				cl.pairs = append(cl.pairs, p)
			}
		}
	}
	cl.sort()
	cl.prune(locals)
	if len(cl.pairs) > limit {
		clear(cl.pairs[limit:])
		cl.pairs = cl.pairs[:limit]
	}
	return cl, nil
}

// sort orders the pairs by decreasing priority; equal priorities keep their
// order, so the result is deterministic for a given input.
func (cl *Checklist) sort() {
	slices.SortStableFunc(cl.pairs, func(a, b *Pair) int {
		switch {
		case a.Priority > b.Priority:
			return -1
		case a.Priority < b.Priority:
			return 1
		}
		return 0
	})
}

// prune applies RFC 8445, Section 6.1.2.4, to the sorted list: the local
// candidate of a pair whose local candidate is reflexive is replaced by its
// base (the host candidate at that address, when the agent has it), and a
// pair is dropped when a higher-priority pair has the same local base and
// remote candidate.
func (cl *Checklist) prune(locals []Candidate) {
	type key struct {
		local     netip.AddrPort
		remote    netip.AddrPort
		transport Transport
		tcp       TCPType
		component uint16
	}
	seen := make(map[key]bool, len(cl.pairs))
	out := cl.pairs[:0]
	for _, p := range cl.pairs {
		if t := p.Local.Type; t == TypeServerReflexive || t == TypePeerReflexive {
			if h := findHost(locals, &p.Local); h != nil {
				p.Local = *h
				p.computePriority(cl.controlling)
			}
		}
		k := key{p.Local.BaseAddr(), p.Remote.Addr, p.Local.Transport, p.Local.TCPType, p.Local.Component}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	clear(cl.pairs[len(out):])
	cl.pairs = out
	cl.sort()
}

// findHost returns the local host candidate that is the base of c.
func findHost(locals []Candidate, c *Candidate) *Candidate {
	base := c.BaseAddr()
	for i := range locals {
		h := &locals[i]
		if h.Type == TypeHost && h.Addr == base && h.Host == "" &&
			h.Component == c.Component && h.Transport == c.Transport && h.TCPType == c.TCPType {
			return h
		}
	}
	return nil
}

// Pairs returns the pairs in decreasing priority order. The slice is a copy;
// the Pairs it points to belong to the Checklist and stay valid until the
// list is reordered or rebuilt.
func (cl *Checklist) Pairs() []*Pair { return slices.Clone(cl.pairs) }

// Len returns the number of pairs.
func (cl *Checklist) Len() int { return len(cl.pairs) }

// Controlling reports the role the priorities are computed for.
func (cl *Checklist) Controlling() bool { return cl.controlling }

// SetControlling changes the agent's role (after a role conflict, RFC 8445,
// Section 7.3.1.1), recomputes every pair priority and reorders the list.
func (cl *Checklist) SetControlling(controlling bool) {
	if controlling == cl.controlling {
		return
	}
	cl.controlling = controlling
	for _, p := range cl.pairs {
		p.computePriority(controlling)
	}
	cl.sort()
}

// SetInitialStates computes the initial pair states, RFC 8445, Section
// 6.1.2.6: every pair is Frozen, then for each foundation the pair with the
// lowest component ID, and of those the highest priority, becomes Waiting.
// An agent with several data streams calls it on the first check list only.
// It returns the number of pairs set to Waiting.
func (cl *Checklist) SetInitialStates() int {
	best := make(map[PairFoundation]*Pair)
	for _, p := range cl.pairs { // decreasing priority
		p.State = PairFrozen
		f := p.Foundation()
		if b, ok := best[f]; !ok || p.Local.Component < b.Local.Component {
			best[f] = p
		}
	}
	for _, p := range best {
		p.State = PairWaiting
	}
	return len(best)
}

// UnfreezeFoundation sets every Frozen pair with foundation f to Waiting, as
// RFC 8445, Section 7.2.5.3.3, asks when a check for a pair of that
// foundation succeeds. It returns the number of pairs unfrozen.
func (cl *Checklist) UnfreezeFoundation(f PairFoundation) int {
	n := 0
	for _, p := range cl.pairs {
		if p.State == PairFrozen && p.Foundation() == f {
			p.State = PairWaiting
			n++
		}
	}
	return n
}

// NextOrdinary returns the pair for the next ordinary check, RFC 8445,
// Section 6.1.4.2, steps 2 and 3 (the triggered-check queue of step 1 is the
// agent's): when no pair is Waiting, it first unfreezes, for each foundation
// with no pair Waiting or In-Progress, that foundation's best Frozen pair
// (lowest component, then highest priority); then it returns the
// highest-priority Waiting pair, or nil. It does not change that pair's
// state: the caller sets In-Progress when it sends the check. This covers a
// single check list; across several, the foundation test spans them all.
func (cl *Checklist) NextOrdinary() *Pair {
	if p := cl.firstWaiting(); p != nil {
		return p
	}
	active := make(map[PairFoundation]bool)
	for _, p := range cl.pairs {
		if p.State == PairWaiting || p.State == PairInProgress {
			active[p.Foundation()] = true
		}
	}
	best := make(map[PairFoundation]*Pair)
	for _, p := range cl.pairs {
		if p.State != PairFrozen || active[p.Foundation()] {
			continue
		}
		f := p.Foundation()
		if b, ok := best[f]; !ok || p.Local.Component < b.Local.Component {
			best[f] = p
		}
	}
	for _, p := range best {
		p.State = PairWaiting
	}
	return cl.firstWaiting()
}

func (cl *Checklist) firstWaiting() *Pair {
	for _, p := range cl.pairs {
		if p.State == PairWaiting {
			return p
		}
	}
	return nil
}

// Find returns the pair with these local base and remote addresses and
// transport, or nil: how a Binding response or request is matched to its
// pair.
func (cl *Checklist) Find(localBase, remote netip.AddrPort, transport Transport) *Pair {
	for _, p := range cl.pairs {
		if p.Local.BaseAddr() == localBase && p.Remote.Addr == remote && p.Local.Transport == transport {
			return p
		}
	}
	return nil
}

// add inserts a pair learned from a check (RFC 8445, Sections 7.3.1.4 and
// 7.2.5.3.1) with its priority for the list's role, keeping the order. The
// MaxPairs limit applies to the list as formed, not to learned pairs.
func (cl *Checklist) add(p *Pair) {
	p.computePriority(cl.controlling)
	cl.pairs = append(cl.pairs, p)
	cl.sort()
}
