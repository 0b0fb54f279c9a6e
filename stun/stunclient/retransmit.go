package stunclient

import "time"

// Defaults of RFC 8489, Section 6.2.1.
const (
	DefaultRTO = 500 * time.Millisecond
	DefaultRc  = 7
	DefaultRm  = 16
	// StreamTimeout is the transaction timeout over TCP and TLS, where
	// there is no retransmission. RFC 8489, Section 6.2.2.
	StreamTimeout = 39500 * time.Millisecond
)

// Retransmit is the UDP retransmission schedule of RFC 8489, Section
// 6.2.1: the request is sent up to Rc times, the wait doubling from RTO
// after each send, and after the last send the client waits Rm*RTO. The
// zero value means the defaults (RTO 500 ms, Rc 7, Rm 16: a 39.5 s
// transaction). It is a plain value, safe to copy and share.
type Retransmit struct {
	RTO time.Duration
	Rc  int
	Rm  int
}

func (r Retransmit) withDefaults() Retransmit {
	if r.RTO <= 0 {
		r.RTO = DefaultRTO
	}
	if r.Rc <= 0 {
		r.Rc = DefaultRc
	}
	if r.Rm <= 0 {
		r.Rm = DefaultRm
	}
	return r
}

// Wait returns how long to wait after send number attempt (0 for the
// first send) before sending again, and whether that send was the last,
// in which case the wait is the final one before the transaction fails.
func (r Retransmit) Wait(attempt int) (wait time.Duration, last bool) {
	r = r.withDefaults()
	if attempt >= r.Rc-1 {
		return time.Duration(r.Rm) * r.RTO, true
	}
	// Cap the shift: the schedule never needs more than a few doublings,
	// and a large Rc must not overflow.
	shift := min(attempt, 30)
	return r.RTO << shift, false
}

// Total returns the time from the first send until the transaction fails.
func (r Retransmit) Total() time.Duration {
	r = r.withDefaults()
	var t time.Duration
	for i := 0; ; i++ {
		w, last := r.Wait(i)
		t += w
		if last {
			return t
		}
	}
}
