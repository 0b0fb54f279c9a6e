package turnserver

import (
	"hash/maphash"
	"log/slog"
	"sync/atomic"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// What the server refuses, and how it keeps a record of abuse: every
// refusal and authentication failure is counted (Stats) and logged at
// info, at most once per source and reason per interval (internal/ratelog).

// refusal is why a request was refused by policy or a quota.
type refusal uint8

const (
	refusePolicy           refusal = iota // 403: the peer policy
	refuseUserAllocations                 // 486: Quotas.AllocationsPerUser
	refuseTotalAllocations                // 508: Quotas.TotalAllocations
	refusePorts                           // 508: no relay port could be bound
	refusePermissions                     // 508: Quotas.PermissionsPerAllocation
	refuseConnects                        // 508: Quotas.ConnectsPerAllocation
	refuseUserConnects                    // 486: Quotas.ConnectsPerUser
	refuseTCPConnections                  // 508: Quotas.TCPConnectionsPerAllocation
	refuseDescriptors                     // 508: the descriptor budget
	nRefusals
)

var refusalNames = [nRefusals]string{"policy", "allocations_per_user", "total_allocations", "relay_ports",
	"permissions_per_allocation", "connects_per_allocation", "connects_per_user",
	"tcp_connections_per_allocation", "descriptors"}

func (r refusal) String() string { return refusalNames[r] }

// nFailures is the number of turnauth.Failure values.
const nFailures = int(turnauth.LookupError) + 1

// abuse holds the counters of refusals and failures.
type abuse struct {
	refused       [nRefusals]atomic.Uint64
	authFailed    [nFailures]atomic.Uint64
	nonceReplays  atomic.Uint64 // 438: nonce older than the last deletion on the 5-tuple
	errorsLimited atomic.Uint64 // error answers not sent: the source's rate was spent
}

// refuse counts and logs a refusal and builds its signed error response.
func (s *Server) refuse(out []byte, r *request, why refusal, code int) []byte {
	s.abuse.refused[why].Add(1)
	s.abuseLog.Log(r.req.From.Addr(), why.String(), "turn request refused",
		slog.Int("code", code), slog.String("method", r.m.Type.Method.String()),
		slog.String("user", r.auth.Username), slog.String("client", r.req.From.String()))
	return s.fail(out, r, code, "")
}

// authFailed counts and logs a failed authentication. The first challenge
// of every exchange (no credentials yet) is not a failure.
func (s *Server) authFailed(m *stun.Message, req *stunserver.Request, c *turnauth.Challenge) {
	if c.Why == turnauth.NoCredentials {
		return
	}
	if int(c.Why) < nFailures {
		s.abuse.authFailed[c.Why].Add(1)
	}
	user, _ := m.Get(stun.AttrUsername)
	s.abuseLog.Log(req.From.Addr(), c.Why.String(), "turn authentication failed",
		slog.Int("code", c.Code), slog.String("method", m.Type.Method.String()),
		slog.String("user", string(user)), slog.String("client", req.From.String()), slog.String("detail", c.Detail))
}

// graveSlots is the size of the graveyard: 16384 slots of 8 bytes.
const graveSlots = 1 << 14

// graveyard remembers when an allocation was last deleted on a 5-tuple,
// so that a request signed with a nonce minted before that cannot act on
// a later allocation of the same 5-tuple (the replay of an old Refresh
// with LIFETIME 0 after the client allocated again). It is a fixed table
// indexed by a keyed hash of the 5-tuple, holding the latest deletion time
// of the 5-tuples that share a slot: a collision can only refuse a nonce
// (one more 438 for a client), never accept one, and entries older than
// the nonce lifetime refuse nothing, so nothing needs expiring. The key
// is random per server, so a client cannot aim collisions.
type graveyard struct {
	seed  maphash.Seed
	slots [graveSlots]atomic.Int64 // Unix microseconds of the last deletion
}

func newGraveyard() *graveyard { return &graveyard{seed: maphash.MakeSeed()} }

func (g *graveyard) slot(k fiveTuple) *atomic.Int64 {
	return &g.slots[maphash.Comparable(g.seed, k)%graveSlots]
}

// bury records a deletion on k at t (Unix microseconds).
func (g *graveyard) bury(k fiveTuple, t int64) {
	s := g.slot(k)
	for {
		old := s.Load()
		if old >= t || s.CompareAndSwap(old, t) {
			return
		}
	}
}

// last returns the latest deletion time (Unix microseconds) recorded in
// k's slot: on k, or on a 5-tuple that shares the slot.
func (g *graveyard) last(k fiveTuple) int64 { return g.slot(k).Load() }
