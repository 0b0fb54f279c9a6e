package turnserver

import "sync/atomic"

// The descriptor budget. Every descriptor the server holds is counted: a
// UDP socket per relayed address, each reserved port, the listening socket
// of a TCP allocation, each RFC 6062 peer connection (and the client data
// connection spliced to it). What would pass the budget is refused (508),
// so that the process keeps the descriptors its listeners need to accept
// clients (the issue's flood of Connects ended in "accept4: too many open
// files" on every listener).

// DefaultDescriptorReserve is what the derived budget leaves of the
// process's open-file limit when Quotas.Descriptors is 0 and the caller
// gave no reserve: at least this many, or an eighth of the limit.
const DefaultDescriptorReserve = 256

// fdBudget counts the descriptors the server holds against its budget.
// It takes no lock.
type fdBudget struct {
	max  int64 // <= 0: unlimited
	held atomic.Int64
}

// take counts n more descriptors, or reports false when they would pass
// the budget.
func (b *fdBudget) take(n int64) bool {
	for {
		old := b.held.Load()
		if b.max > 0 && old+n > b.max {
			return false
		}
		if b.held.CompareAndSwap(old, old+n) {
			return true
		}
	}
}

// force counts n descriptors the server already holds (a connection handed
// over to it), budget or not.
func (b *fdBudget) force(n int64) { b.held.Add(n) }

func (b *fdBudget) release(n int64) { b.held.Add(-n) }
