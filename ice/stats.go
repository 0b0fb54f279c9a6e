package ice

import "sync/atomic"

// AgentStats counts packets the Agent dropped.
type AgentStats struct {
	Dropped   uint64 // a queue was full
	Malformed uint64 // not usable by the Checker, the STUN client or the Conn
	// Keepalives counts the Binding indications sent on the selected
	// pair. RFC 8445, Section 11.
	Keepalives uint64
	// ConsentChecks counts the consent checks sent, ConsentResponses
	// the successful answers to them. RFC 7675.
	ConsentChecks, ConsentResponses uint64
}

// agentCounters are the Agent's counters, updated by its goroutines
// and the Conn without a lock.
type agentCounters struct {
	dropped   atomic.Uint64 // packets the queues had no room for
	malformed atomic.Uint64 // packets no one could use
	kas       atomic.Uint64 // keepalives sent
	consents  atomic.Uint64 // consent checks sent
	consentOK atomic.Uint64 // consent checks answered
}

// Stats returns the Agent's counters.
func (a *Agent) Stats() AgentStats {
	c := &a.counters
	return AgentStats{
		Dropped: c.dropped.Load(), Malformed: c.malformed.Load(), Keepalives: c.kas.Load(),
		ConsentChecks: c.consents.Load(), ConsentResponses: c.consentOK.Load(),
	}
}
