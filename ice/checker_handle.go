package ice

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

// Handle processes a STUN packet received on the local base from the
// address from: a connectivity check (RFC 8445, Section 7.3) or the
// response to one (Section 7.2.5). Answers are queued for the next call to
// Next, which the driver makes right away. It returns an error wrapping
// ErrDropped for a packet it ignored (not STUN, bad FINGERPRINT, unknown
// transaction, ...) and one wrapping ErrUnauthenticated for a check that
// failed authentication; callers count them and go on. pkt is not kept.
// local is the base the packet arrived on (the relayed address for a
// relayed candidate); now is the time of receipt, which dates the answers
// to consent checks (RFC 7675).
func (c *Checker) Handle(pkt []byte, local, from netip.AddrPort, now time.Time) error {
	local, from = netx.Unmap(local), netx.Unmap(from)
	c.idle = false
	m := &c.scratch
	if err := m.Parse(pkt); err != nil {
		return fmt.Errorf("%w: %w", ErrDropped, err)
	}
	if m.Classic || m.Type.Method != stun.MethodBinding {
		return fmt.Errorf("%w: not an RFC 8489 Binding message", ErrDropped)
	}
	// RFC 8445, Section 7.2.2: checks and their responses carry
	// FINGERPRINT; anything else on the socket is not ICE.
	if err := m.CheckFingerprint(); err != nil {
		return fmt.Errorf("%w: %w", ErrDropped, err)
	}
	switch m.Type.Class {
	case stun.ClassRequest:
		return c.handleRequest(m, local, from)
	case stun.ClassSuccess, stun.ClassError:
		return c.handleResponse(m, local, from, now)
	}
	return nil // indications: keepalives, RFC 8445, Section 11
}

// respond queues a response, dropping it when the queue is full.
func (c *Checker) respond(local, to netip.AddrPort, pkt []byte) {
	if len(c.pending) < maxPending {
		c.pending = append(c.pending, Outgoing{From: local, To: to, Packet: pkt})
	}
}

// handleRequest answers a connectivity check. RFC 8445, Section 7.3.
func (c *Checker) handleRequest(m *stun.Message, local, from netip.AddrPort) error {
	base := c.localBase(local)
	if base == nil {
		return fmt.Errorf("%w: request on unknown local address %v", ErrDropped, local)
	}
	req, err := parseRequest(m, c.cfg.LocalUfrag, c.cfg.RemoteUfrag, c.localKey)
	if ae := (*authError)(nil); errors.As(err, &ae) {
		var key []byte
		if ae.code == stun.CodeUnknownAttribute {
			key = c.localKey // RFC 8489, Section 9.1.3: 420 after authentication
			if c.scratch.CheckIntegrity(c.localKey) != nil {
				key = nil
			}
		}
		c.respond(local, from, appendError(make([]byte, 0, 96), m.TransactionID, ae.code, key, ae.unknown))
		return err
	}

	// Section 7.3.1.1: role conflicts. A lite agent stays controlled
	// and tells a full peer that also claims controlled to switch.
	controlling := c.cl.Controlling()
	switch {
	case c.cfg.Lite && req.role == roleControlled:
		c.respond(local, from, appendError(make([]byte, 0, 96), m.TransactionID, stun.CodeRoleConflict, c.localKey, nil))
		return nil
	case c.cfg.Lite:
	case controlling && req.role == roleControlling:
		if c.tieBreaker >= req.tieBreaker {
			c.respond(local, from, appendError(make([]byte, 0, 96), m.TransactionID, stun.CodeRoleConflict, c.localKey, nil))
			return nil
		}
		c.setControlling(false)
	case !controlling && req.role == roleControlled:
		if c.tieBreaker >= req.tieBreaker {
			c.setControlling(true)
		} else {
			c.respond(local, from, appendError(make([]byte, 0, 96), m.TransactionID, stun.CodeRoleConflict, c.localKey, nil))
			return nil
		}
	}

	// Section 7.3.1.2: the success response.
	c.respond(local, from, appendSuccess(make([]byte, 0, 80), m.TransactionID, from, c.localKey))

	// Section 7.3.1.3: learn a peer-reflexive remote candidate.
	remote := c.remoteAt(from, base.Component)
	if remote == nil && len(c.remotes) >= c.limit {
		return nil // answered, but no more learning
	}
	if remote == nil {
		c.remotes = append(c.remotes, Candidate{
			Foundation: c.prflxFoundation(), Component: base.Component, Transport: TransportUDP,
			Priority: req.priority, Addr: from, Type: TypePeerReflexive,
		})
		remote = &c.remotes[len(c.remotes)-1]
	}

	// Section 7.3.1.4: the triggered check.
	p := c.cl.Find(local, from, TransportUDP)
	if p == nil {
		if !canPair(base, remote) {
			return nil
		}
		if p = c.newPair(base, remote); p == nil {
			return nil
		}
	}
	if c.cfg.Lite {
		// Section 7.3.1.5 for a lite agent: no triggered check; the
		// pair of a check with USE-CANDIDATE is valid and nominated.
		if req.useCandidate {
			p.State = PairSucceeded
			c.info[p].valid = p
			c.nom.addValid(p)
			c.nominated(p)
		}
		return nil
	}
	pi := c.info[p]
	switch p.State {
	case PairSucceeded:
	case PairInProgress:
		c.cancel(pi.tx)
		p.State = PairWaiting
		c.enqueue(p, false)
	default: // Frozen, Waiting, Failed
		p.State = PairWaiting
		c.enqueue(p, false)
	}

	// Section 7.3.1.5: nomination, on the controlled side.
	if req.useCandidate && !c.cl.Controlling() {
		if p.State == PairSucceeded && pi.valid != nil {
			c.nominated(pi.valid)
		} else {
			pi.nominateOnSuccess = true
		}
	}
	return nil
}

// handleResponse processes the answer to one of our checks. RFC 8445,
// Section 7.2.5.
func (c *Checker) handleResponse(m *stun.Message, local, from netip.AddrPort, now time.Time) error {
	t := c.findTx(m.TransactionID)
	if t == nil && c.consentResponse(m, local, from, now) {
		return nil
	}
	if t == nil {
		return fmt.Errorf("%w: response to an unknown transaction", ErrDropped)
	}
	// RFC 8489, Section 9.1.4: a response that fails MESSAGE-INTEGRITY
	// (or lacks it) is discarded as if never received.
	if err := m.CheckIntegrity(c.remoteKey); err != nil {
		return fmt.Errorf("%w: %w: response: %w", ErrDropped, ErrUnauthenticated, err)
	}
	c.removeTx(t)
	p := t.pair
	pi := c.info[p]

	// Section 7.2.5.2.1: the addresses must be symmetric.
	if from != t.to || local != t.from {
		c.failCheck(t)
		return nil
	}
	if m.Type.Class == stun.ClassError {
		code, _, err := m.ErrorCode()
		if err == nil && code == stun.CodeRoleConflict {
			// Section 7.2.5.1: switch role if we still have the one
			// we sent, and retry.
			if c.cl.Controlling() == t.controlling {
				c.setControlling(!t.controlling)
			}
			if p.State != PairSucceeded {
				p.State = PairWaiting
			}
			c.enqueue(p, t.nominate && c.cl.Controlling())
			return nil
		}
		c.failCheck(t) // Section 7.2.5.2.4: unrecoverable
		return nil
	}
	mapped, err := m.XORMappedAddress()
	if err != nil {
		c.failCheck(t)
		return nil
	}

	// Section 7.2.5.3.1: the valid pair.
	v := c.validPair(t, mapped)
	p.State = PairSucceeded
	pi.valid = v
	c.nom.addValid(v)
	c.dequeue(p)
	// Section 7.2.5.3.3: unfreeze the foundation.
	c.cl.UnfreezeFoundation(p.Foundation())

	// Section 7.2.5.3.4 and 7.3.1.5: nomination.
	switch {
	case t.nominate && t.controlling && c.cl.Controlling():
		c.nominated(v)
	case !c.cl.Controlling() && pi.nominateOnSuccess:
		pi.nominateOnSuccess = false
		c.nominated(v)
	}
	return nil
}

// failCheck fails the pair of a check. RFC 8445, Section 7.2.5.2.
func (c *Checker) failCheck(t *transaction) {
	if t.nominate {
		c.nominationFailed(t.pair, false)
	}
	if t.pair.State != PairSucceeded {
		t.pair.State = PairFailed
	}
}

// dequeue drops p's ordinary entry from the triggered-check queue.
func (c *Checker) dequeue(p *Pair) {
	for i, q := range c.triggered {
		if q.pair == p && !q.nominate {
			c.triggered = append(c.triggered[:i], c.triggered[i+1:]...)
			return
		}
	}
}

// validPair returns the valid pair a successful check of t.pair produced,
// RFC 8445, Section 7.2.5.3.2: the pair itself when the mapped address is
// its local candidate, else the pair of the local candidate at that
// address, else a pair with the known local candidate at that address,
// else a new pair with a peer-reflexive local candidate
// (Section 7.2.5.3.1) that is not added to the check list.
func (c *Checker) validPair(t *transaction, mapped netip.AddrPort) *Pair {
	p := t.pair
	if p.Local.Addr == mapped {
		return p
	}
	for _, v := range c.nom.valid {
		if v.Local.Addr == mapped && v.Local.BaseAddr() == t.from && v.Remote.Addr == p.Remote.Addr {
			return v
		}
	}
	for _, q := range c.cl.pairs {
		if q.Local.Addr == mapped && q.Local.BaseAddr() == t.from && q.Remote.Addr == p.Remote.Addr {
			return q
		}
	}
	// A local candidate that the check list no longer holds (a
	// server-reflexive one, pruned for its base, Section 6.1.2.4) is
	// still known: the valid pair takes it rather than a new
	// peer-reflexive one.
	for i := range c.locals {
		if l := &c.locals[i]; l.Addr == mapped && l.BaseAddr() == t.from {
			v := &Pair{Local: *l, Remote: p.Remote, State: PairSucceeded}
			v.computePriority(c.cl.Controlling())
			c.info[v] = &pairInfo{valid: v}
			return v
		}
	}
	local := Candidate{
		Foundation: Foundation(TypePeerReflexive, t.from.Addr(), netip.Addr{}, TransportUDP),
		Component:  p.Local.Component,
		Transport:  TransportUDP,
		Priority:   t.priority,
		Addr:       mapped,
		Type:       TypePeerReflexive,
		Related:    t.from,
		Base:       t.from,
	}
	v := &Pair{Local: local, Remote: p.Remote, State: PairSucceeded}
	v.computePriority(c.cl.Controlling())
	c.info[v] = &pairInfo{valid: v}
	return v
}
