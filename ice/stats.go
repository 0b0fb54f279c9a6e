package ice

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/icebreaker-net/icebreaker/stun/stunuri"
)

// AgentStats counts packets the Agent dropped and sent, and lists the
// servers that failed while gathering.
type AgentStats struct {
	Dropped   uint64 // a queue was full, or the kernel refused a queued datagram
	Malformed uint64 // not usable by the Checker, the STUN client or the Conn
	// Keepalives counts the Binding indications sent on the selected
	// pair. RFC 8445, Section 11.
	Keepalives uint64
	// ConsentChecks counts the consent checks sent, ConsentResponses
	// the successful answers to them. RFC 7675.
	ConsentChecks, ConsentResponses uint64
	// BackupChecks counts the consent checks sent on the relayed pair
	// kept as a backup while a direct pair is selected, BackupResponses
	// the successful answers to them, and Failovers the moves from a
	// disconnected selected pair back to that backup.
	BackupChecks, BackupResponses, Failovers uint64
	// GatherFailures lists the STUN and TURN servers that yielded no
	// candidate in the newest gathering (Gather or Regather), in the order
	// they failed. It is a copy.
	GatherFailures []GatherFailure
}

// agentCounters are the Agent's counters, updated by its goroutines
// and the Conn without a lock.
type agentCounters struct {
	dropped   atomic.Uint64 // packets the queues had no room for
	malformed atomic.Uint64 // packets no one could use
	kas       atomic.Uint64 // keepalives sent
	consents  atomic.Uint64 // consent checks sent
	consentOK atomic.Uint64 // consent checks answered
	backups   atomic.Uint64 // consent checks sent on the backup pair
	backupOK  atomic.Uint64 // those answered
	failovers atomic.Uint64 // moves to the backup pair
}

// Stats returns the Agent's counters.
func (a *Agent) Stats() AgentStats {
	c := &a.counters
	a.mu.Lock()
	fails := slices.Clone(a.gathering.failures)
	a.mu.Unlock()
	return AgentStats{
		Dropped: c.dropped.Load() + a.queueDrops(), Malformed: c.malformed.Load(), Keepalives: c.kas.Load(),
		ConsentChecks: c.consents.Load(), ConsentResponses: c.consentOK.Load(),
		BackupChecks: c.backups.Load(), BackupResponses: c.backupOK.Load(), Failovers: c.failovers.Load(),
		GatherFailures: fails,
	}
}

// GatherFailure is a STUN or TURN server that yielded no candidate. It
// is a plain value.
type GatherFailure struct {
	// URI names the server: stun:HOST:PORT (RFC 7064), or
	// turn:HOST:PORT?transport=udp|tcp and turns:... (RFC 7065).
	URI string
	// Op is what failed: "binding", the STUN Binding for a
	// server-reflexive candidate (RFC 8445, Section 5.1.1.2), or
	// "allocate", the TURN allocation for a relayed candidate.
	Op string
	// Base is the host address the Binding was sent from; zero for
	// "allocate".
	Base netip.AddrPort
	// Err is why: a *stunclient.TimeoutError when the server did not
	// answer, a *stun.Error for an error response (401 for wrong TURN
	// credentials), a dial or TLS error, the context's error.
	Err error
}

// Error returns "URI: op: the error".
func (f *GatherFailure) Error() string {
	return f.URI + ": " + f.Op + ": " + f.Err.Error()
}

// Unwrap returns Err.
func (f *GatherFailure) Unwrap() error { return f.Err }

// stunURI returns server as a STUN URI, RFC 7064, Section 3.1.
func stunURI(server netip.AddrPort) string {
	return stunuri.FromAddrPort(stunuri.STUN, server).String()
}

// noCandidates is Gather's error when generation gen found nothing: the
// servers' failures, or that there was nothing to ask.
func (a *Agent) noCandidates(gen int) error {
	a.mu.Lock()
	fails := a.gathering.failures
	if gen != a.gathering.gen {
		fails = nil
	}
	a.mu.Unlock()
	if len(fails) == 0 {
		return fmt.Errorf("%w: no usable host address and no server gave one", ErrNoCandidates)
	}
	msgs := make([]string, len(fails))
	for i := range fails {
		msgs[i] = fails[i].Error()
	}
	return fmt.Errorf("%w: %s", ErrNoCandidates, strings.Join(msgs, "; "))
}
