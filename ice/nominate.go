package ice

import (
	"slices"
	"time"
)

// nomination is the valid list and the regular nomination state, RFC 8445,
// Section 8.
type nomination struct {
	valid      []*Pair // decreasing priority, RFC 8445, Section 7.2.5.3.2
	selected   *Pair   // highest-priority nominated valid pair
	nominating *Pair   // valid pair whose USE-CANDIDATE check is pending
	relaySince time.Time
	// recheckAt is when the failed direct pairs are checked again
	// (recheck); zero while no recheck is due.
	recheckAt time.Time
}

// isRelayed reports whether a pair goes through a TURN relay on either side.
func isRelayed(p *Pair) bool {
	return p.Local.Type == TypeRelay || p.Remote.Type == TypeRelay
}

func (n *nomination) sortValid() {
	slices.SortStableFunc(n.valid, func(a, b *Pair) int {
		switch {
		case a.Priority > b.Priority:
			return -1
		case a.Priority < b.Priority:
			return 1
		}
		return 0
	})
}

// addValid puts p on the valid list, once.
func (n *nomination) addValid(p *Pair) {
	if !slices.Contains(n.valid, p) {
		n.valid = append(n.valid, p)
		n.sortValid()
	}
}

// nominated marks valid pair v nominated and selects the highest-priority
// nominated pair: the controlled agent's rule of RFC 8445, Section 8.1.1,
// which also lets the controlling agent upgrade from a relayed pair to a
// direct one that succeeds later.
func (c *Checker) nominated(v *Pair) {
	c.info[v].nominated = true
	if c.nom.nominating == v {
		c.nom.nominating = nil
	}
	if c.nom.selected == nil || v.Priority > c.nom.selected.Priority {
		c.nom.selected = v
	}
	c.updateState()
}

// maxNominationTries is how many USE-CANDIDATE transactions the
// controlling agent runs for one valid pair before it gives the pair up.
// A nomination whose responses were all lost may still have reached the
// controlled agent, which then selects the pair: trying the same pair again
// keeps both agents on one path.
const maxNominationTries = 3

// nominationFailed handles a nomination check of the pair gen that timed
// out or failed: the same valid pair is nominated again, up to
// maxNominationTries; then the valid pair leaves the valid list (RFC 8445,
// Section 7.2.5.4) and the controlling agent chooses again. It reports
// whether the pair was given up.
func (c *Checker) nominationFailed(gen *Pair, timedOut bool) bool {
	v := c.info[gen].valid
	if v == nil || c.nom.nominating != v {
		return false
	}
	vi := c.info[v]
	vi.nomTries++
	if timedOut && vi.nomTries < maxNominationTries {
		c.enqueue(gen, true)
		return false
	}
	c.nom.nominating = nil
	if c.nom.selected != v {
		c.nom.valid = slices.DeleteFunc(c.nom.valid, func(p *Pair) bool { return p == v })
		gen.State = PairFailed
	}
	return true
}

// nominate makes the controlling agent's regular nomination decision, RFC
// 8445, Section 8.1.1. It nominates the best valid pair as soon as it is
// direct (a deliberate choice: waiting for every higher-priority check to
// end can take a whole transaction timeout when those pairs are dead).
// When the best valid pair is relayed, it waits RelayWait from the first
// relayed success for a direct pair or a relayed one of higher priority,
// or until no such pair is left to check. With a relayed pair selected, a direct pair that succeeds later
// is nominated too, and the controlled agent moves to it (the higher
// priority).
func (c *Checker) nominate(now time.Time) {
	if !c.cl.Controlling() || c.nom.nominating != nil || len(c.nom.valid) == 0 {
		return
	}
	best := c.nom.valid[0]
	sel := c.nom.selected
	if sel != nil && (sel == best || !isRelayed(sel) || isRelayed(best)) {
		return
	}
	if isRelayed(best) {
		if c.nom.relaySince.IsZero() {
			c.nom.relaySince = now
		}
		if t, _ := c.relayDeadline(); now.Before(t) {
			return
		}
	}
	gen := c.generating(best)
	if gen == nil {
		return
	}
	c.nom.nominating = best
	c.info[best].nomTries = 0
	c.enqueue(gen, true)
}

// relayDeadline returns when the relay wait ends, if it is running and a
// direct pair could still succeed.
func (c *Checker) relayDeadline() (time.Time, bool) {
	if !c.cl.Controlling() || c.nom.relaySince.IsZero() || c.nom.nominating != nil || c.nom.selected != nil {
		return time.Time{}, false
	}
	if c.cfg.RelayWait < 0 || !c.directPending() && !c.betterPending() {
		return c.nom.relaySince, true
	}
	return c.nom.relaySince.Add(c.cfg.RelayWait), true
}

// betterPending reports whether a pair through a better relay than the
// best valid pair's may still succeed: with relayed candidates only, a
// relay through UDP (listed first, so of higher local preference) whose
// check is still out when one through TCP succeeded. Within the relay wait
// it is worth waiting for: a relay over TCP costs a system call per
// datagram and stalls on every loss. Pending pairs that differ only in the
// other side's candidate (a private host address that never answers) do
// not hold the nomination.
func (c *Checker) betterPending() bool {
	if len(c.nom.valid) == 0 {
		return false
	}
	best := c.nom.valid[0]
	better := func(p *Pair) bool {
		return p.Local.Type == TypeRelay && p.Local.Priority > best.Local.Priority ||
			p.Remote.Type == TypeRelay && p.Remote.Priority > best.Remote.Priority
	}
	for _, p := range c.cl.pairs {
		if p.State != PairSucceeded && p.State != PairFailed && better(p) {
			return true
		}
	}
	for _, q := range c.triggered {
		if better(q.pair) {
			return true
		}
	}
	return false
}

// directPending reports whether a direct pair may still succeed.
func (c *Checker) directPending() bool {
	for _, p := range c.cl.pairs {
		if !isRelayed(p) && p.State != PairSucceeded && p.State != PairFailed {
			return true
		}
	}
	for _, q := range c.triggered {
		if !isRelayed(q.pair) {
			return true
		}
	}
	return false
}

// generating returns the check-list pair whose check produced valid pair v.
func (c *Checker) generating(v *Pair) *Pair {
	for _, p := range c.cl.pairs {
		if c.info[p].valid == v {
			return p
		}
	}
	return nil
}

// recheck puts the failed direct pairs back to Waiting, so that ordinary
// checks run on them again, once a relayed pair has been selected and
// every direct pair has failed for CheckerConfig.Recheck. A deliberate
// deviation from RFC 8445, which keeps a failed pair failed (Section
// 7.2.5.4): a path that was blocked when the checks ran (a firewall rule,
// a NAT binding that collided) may open later, and data on the relay
// costs the relay's operator for the whole session. Both agents do it
// (each when its own direct pairs have failed), so that their checks
// cross as in the first round and open each NAT; a direct pair that
// succeeds is then nominated as after a late success (nominate).
func (c *Checker) recheck(now time.Time) {
	sel := c.nom.selected
	if c.cfg.Recheck < 0 || sel == nil || !isRelayed(sel) || c.directPending() {
		c.nom.recheckAt = time.Time{}
		return
	}
	if c.nom.recheckAt.IsZero() {
		c.nom.recheckAt = now.Add(c.cfg.Recheck)
		return
	}
	if now.Before(c.nom.recheckAt) {
		return
	}
	c.nom.recheckAt = time.Time{}
	for _, p := range c.cl.pairs {
		if !isRelayed(p) && p.State == PairFailed {
			p.State = PairWaiting
			c.idle = false
		}
	}
}
