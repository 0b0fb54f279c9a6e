package ice

import "time"

// liveness is the timing of the selected pair once there is one, without
// I/O, like the Checker: keepalives (RFC 8445, Section 11), consent
// freshness (RFC 7675, Section 5.1) and when the pair counts as
// disconnected. The driver (the Agent's loop) tells it what happened
// (Select, Sent, Answered) and asks Next what is due and when to ask
// again; it reads no clock. Not safe for concurrent use: the loop owns it.
type liveness struct {
	keepalive  time.Duration // Tr; 0: no keepalives
	interval   time.Duration // mean consent interval; 0: no consent checks
	timeout    time.Duration // consent lasts this long without an answer
	disconnect time.Duration // no answer this long: disconnected
	// jitter randomizes each consent interval, RFC 7675, Section 5.1.
	jitter func(time.Duration) time.Duration

	lastSent  time.Time // latest packet on the selected pair
	since     time.Time // consent: the latest answer, or the selection
	nextCheck time.Time // consent: when the next check goes out
}

// liveDue is what Next found due.
type liveDue struct {
	Keepalive bool // send a Binding indication on the selected pair
	Check     bool // send a consent check on it
	// Consent says that consent freshness runs; then Lost is true once
	// consent expired (stop sending: ErrConsentLost), and Stale once no
	// answer came for the disconnect time (ConnectionDisconnected; else
	// ConnectionConnected).
	Consent, Lost, Stale bool
}

// newLiveness returns the timing of cfg, whose defaults NewAgent filled
// in: a negative Keepalive or ConsentInterval, or a lite agent's consent
// (the full peer runs it, RFC 7675), is off.
func newLiveness(cfg *AgentConfig, jitter func(time.Duration) time.Duration) liveness {
	l := liveness{timeout: cfg.ConsentTimeout, disconnect: cfg.DisconnectedAfter, jitter: jitter}
	l.keepalive = max(cfg.Keepalive, 0)
	if !cfg.Lite {
		l.interval = max(cfg.ConsentInterval, 0)
	}
	return l
}

// Select records that a pair was selected, or another one, at now: its
// check has just succeeded, so consent is fresh and the pair was used.
func (l *liveness) Select(now time.Time) {
	l.lastSent, l.since = now, now
	if l.interval > 0 {
		l.nextCheck = now.Add(l.jitter(l.interval))
	}
}

// Sent records a packet sent on the selected pair at at: a check, an
// answer or the application's data. It delays the next keepalive.
func (l *liveness) Sent(at time.Time) { l.lastSent = maxTime(l.lastSent, at) }

// Answered records an answer to a consent check received at at.
func (l *liveness) Answered(at time.Time) { l.since = maxTime(l.since, at) }

// Since returns the selected pair's latest consent answer, or its
// selection.
func (l *liveness) Since() time.Time { return l.since }

// Next returns what is due at now, assuming the driver does it (a
// keepalive or consent check due now counts as sent), and when to call
// Next again (zero: nothing is scheduled).
func (l *liveness) Next(now time.Time) (liveDue, time.Time) {
	var due liveDue
	var next time.Time
	if l.keepalive > 0 {
		at := l.lastSent.Add(l.keepalive)
		if !now.Before(at) {
			due.Keepalive = true
			l.lastSent = now
			at = now.Add(l.keepalive)
		}
		next = at
	}
	if l.interval == 0 {
		return due, next
	}
	due.Consent = true
	expiry := l.since.Add(l.timeout)
	if !now.Before(expiry) {
		due.Lost = true
		return due, next
	}
	if stale := l.since.Add(l.disconnect); now.Before(stale) {
		next = earliest(next, stale)
	} else {
		due.Stale = true
	}
	if !now.Before(l.nextCheck) {
		due.Check = true
		l.nextCheck = now.Add(l.jitter(l.interval))
	}
	return due, earliest(earliest(next, l.nextCheck), expiry)
}
