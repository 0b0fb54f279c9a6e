package ice

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// PairState is the state of a candidate pair. RFC 8445, Section 6.1.2.6.
type PairState uint8

const (
	PairFrozen     PairState = iota // not checked yet, waiting to be unfrozen
	PairWaiting                     // may be checked when it is its turn
	PairInProgress                  // a check was sent, no answer yet
	PairSucceeded                   // a check produced a valid pair
	PairFailed                      // the check failed or timed out
)

func (s PairState) String() string {
	switch s {
	case PairFrozen:
		return "Frozen"
	case PairWaiting:
		return "Waiting"
	case PairInProgress:
		return "In-Progress"
	case PairSucceeded:
		return "Succeeded"
	case PairFailed:
		return "Failed"
	}
	return "PairState(" + strconv.Itoa(int(s)) + ")"
}

// PairPriority computes a pair's priority, RFC 8445, Section 6.1.2.3, from
// the priority g of the controlling agent's candidate and d of the
// controlled agent's:
//
//	pair priority = 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0)
//
// Candidate priorities are at most 2^31-1 (RFC 8445, Section 5.1.2.1), for
// which this never overflows; with both priorities near 2^32 it would, and
// the result saturates at the largest uint64 instead of wrapping.
func PairPriority(g, d uint32) uint64 {
	var tie uint64
	if g > d {
		tie = 1
	}
	sum, carry := bits.Add64(uint64(min(g, d))<<32, 2*uint64(max(g, d))+tie, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return sum
}

// PairFoundation is a pair's foundation: its local and remote candidates'
// foundations, kept apart so that ("1","23") and ("12","3") differ. RFC 8445,
// Section 6.1.2.6.
type PairFoundation struct {
	Local, Remote string
}

// Pair is a candidate pair. A Pair in a Checklist is owned by that
// Checklist and shares its concurrency rules: not safe for concurrent use.
type Pair struct {
	Local, Remote Candidate
	State         PairState
	Priority      uint64 // PairPriority for the current role
}

// Foundation returns the pair's foundation.
func (p *Pair) Foundation() PairFoundation {
	return PairFoundation{p.Local.Foundation, p.Remote.Foundation}
}

// String returns "local -> remote (type/type, state)" for logs.
func (p *Pair) String() string {
	return fmt.Sprintf("%s %s -> %s %s (%s)", p.Local.Type, p.Local.Addr, p.Remote.Type, p.Remote.Addr, p.State)
}

// computePriority sets p.Priority for the agent's role.
func (p *Pair) computePriority(controlling bool) {
	if controlling {
		p.Priority = PairPriority(p.Local.Priority, p.Remote.Priority)
	} else {
		p.Priority = PairPriority(p.Remote.Priority, p.Local.Priority)
	}
}

// ErrBadTransition is wrapped by SetState for a state change the RFC 8445
// procedures never make.
var ErrBadTransition = errors.New("ice: invalid pair state transition")

// SetState moves the pair to s, allowing only the changes RFC 8445 makes:
//
//	Frozen      -> Waiting (unfreezing, Sections 6.1.2.6, 6.1.4.2, 7.2.5.3.3),
//	               Failed (check list stopped)
//	Waiting     -> In-Progress (check sent, Section 6.1.4.2), Failed
//	In-Progress -> Succeeded, Failed (Section 7.2.5),
//	               Waiting (cancelled by a triggered check, Section 7.3.1.4)
//	Failed      -> Waiting (triggered check, Section 7.3.1.4)
//
// Setting the current state again is a no-op. Succeeded is final.
func (p *Pair) SetState(s PairState) error {
	if s == p.State {
		return nil
	}
	ok := false
	switch p.State {
	case PairFrozen:
		ok = s == PairWaiting || s == PairFailed
	case PairWaiting:
		ok = s == PairInProgress || s == PairFailed
	case PairInProgress:
		ok = s == PairSucceeded || s == PairFailed || s == PairWaiting
	case PairFailed:
		ok = s == PairWaiting
	}
	if !ok {
		return fmt.Errorf("%w: %v -> %v", ErrBadTransition, p.State, s)
	}
	p.State = s
	return nil
}

// canPair reports whether a local and a remote candidate form a pair, RFC
// 8445, Section 6.1.2.2: same component, same transport, same IP address
// family, and an IPv6 link-local address only with another one. For TCP
// (RFC 6544, Section 6.2) active pairs with passive and S-O with S-O. A
// remote candidate whose address is still an unresolved FQDN, unspecified,
// or has port 0 (other than a TCP active one, which never accepts
// connections) is not paired.
func canPair(l, r *Candidate) bool {
	if l.Component != r.Component || l.Transport != r.Transport {
		return false
	}
	if r.Host != "" || l.Host != "" {
		return false
	}
	la, ra := l.Addr.Addr().Unmap(), r.Addr.Addr().Unmap()
	if !la.IsValid() || !ra.IsValid() || ra.IsUnspecified() || la.Is4() != ra.Is4() {
		return false
	}
	if la.Is6() && la.IsLinkLocalUnicast() != ra.IsLinkLocalUnicast() {
		return false
	}
	if l.Transport == TransportTCP {
		switch l.TCPType {
		case TCPTypeActive:
			return r.TCPType == TCPTypePassive && r.Addr.Port() != 0
		case TCPTypePassive:
			return r.TCPType == TCPTypeActive
		case TCPTypeSO:
			return r.TCPType == TCPTypeSO && r.Addr.Port() != 0
		}
		return false
	}
	return r.Addr.Port() != 0
}
