package turnserver

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// Changing a running server: the authenticator, the peer policy and the
// quotas can be swapped while allocations go on (a configuration reload),
// and the server can be drained (no new allocations, the existing ones
// kept) before it stops. Nothing here touches the relay sockets, so no
// packet is lost to a change.

// authSwitch holds the Authenticator requests go through; SetAuth swaps
// it. It is safe for concurrent use.
type authSwitch struct{ p atomic.Pointer[Authenticator] }

func newAuthSwitch(a Authenticator) *authSwitch {
	s := &authSwitch{}
	s.p.Store(&a)
	return s
}

func (s *authSwitch) Authenticate(ctx context.Context, m *stun.Message, from turnauth.Client, now time.Time) (turnauth.Result, *turnauth.Challenge) {
	return (*s.p.Load()).Authenticate(ctx, m, from, now)
}

func (s *authSwitch) AppendChallenge(b []byte, c *turnauth.Challenge, from turnauth.Client, now time.Time) []byte {
	return (*s.p.Load()).AppendChallenge(b, c, from, now)
}

// policySwitch holds the PeerPolicy; SetPolicy swaps it. Allowed stays
// allocation-free: one atomic load more.
type policySwitch struct{ p atomic.Pointer[PeerPolicy] }

func newPolicySwitch(p PeerPolicy) *policySwitch {
	s := &policySwitch{}
	s.p.Store(&p)
	return s
}

func (s *policySwitch) Allowed(peer netip.AddrPort) bool { return (*s.p.Load()).Allowed(peer) }
func (s *policySwitch) Check(peer netip.AddrPort) error  { return (*s.p.Load()).Check(peer) }

// SetAuth makes a the authenticator of every request from now on. The
// allocations stay; a request already being answered may still use the
// old one. Allocations of users that a no longer knows end at their next
// refresh once RevokeUsers marks them. a must not be nil.
func (s *Server) SetAuth(a Authenticator) {
	if a != nil {
		s.auth.p.Store(&a)
	}
}

// SetPolicy makes p the peer policy from now on and removes the
// permissions and channels it denies from every allocation (RFC 8656,
// Section 21.1 lets the server restrict peers at any time). It returns how
// many permissions and channels it removed. p must not be nil.
func (s *Server) SetPolicy(p PeerPolicy) (removed int) {
	if p == nil {
		return 0
	}
	s.policy.p.Store(&p)
	s.allocs.each(func(a *allocation) { removed += a.prunePeers(p) })
	return removed
}

// prunePeers removes the permissions whose IP p denies and the channels
// whose peer p denies, and the channels of a removed permission's IP.
func (a *allocation) prunePeers(p PeerPolicy) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.peers.Load()
	t := &peerTable{}
	for _, pm := range old.perms {
		// The port does not matter for a permission (Section 9): judge
		// it as CreatePermission does.
		if p.Allowed(netip.AddrPortFrom(pm.ip, permissionCheckPort)) {
			t.perms = append(t.perms, pm)
		}
	}
	for _, c := range old.chans {
		if p.Allowed(c.peer) && t.permitted(c.peer.Addr()) {
			t.chans = append(t.chans, c)
		}
	}
	n := len(old.perms) - len(t.perms) + len(old.chans) - len(t.chans)
	if n > 0 {
		a.peers.Store(t)
	}
	return n
}

// SetQuotas applies new quotas. The allocation counts apply to the next
// Allocate (allocations over a lowered limit are kept), the permission
// and connection limits to the next request; the bandwidth limits apply
// to allocations and users created from now on, existing ones keep the
// rate they started with. Zero fields mean the documented defaults, as in
// Config. An invalid set is refused and the old one stays.
func (s *Server) SetQuotas(q Quotas) error {
	c := s.cfg
	c.Quotas = q
	if err := c.Validate(); err != nil {
		return err
	}
	c = c.withDefaults()
	s.quotas.Store(&c.Quotas)
	return nil
}

// Quotas returns the quotas in force, with defaults applied.
func (s *Server) Quotas() Quotas { return *s.quota() }

// quota returns the quotas in force; the Quotas it points to never
// change (SetQuotas stores a new one).
func (s *Server) quota() *Quotas { return s.quotas.Load() }

// bandwidthPerAllocation is the per-allocation rate for a new allocation.
func (s *Server) bandwidthPerAllocation() int64 { return s.quota().BandwidthPerAllocation }

// RevokeUsers marks the allocations whose username keep rejects: the next
// Refresh of such an allocation that fails authentication (the user is
// gone, so it does) deletes it instead of leaving it to expire. It returns
// how many it marked. keep is called without locks held.
func (s *Server) RevokeUsers(keep func(username string) bool) int {
	n := 0
	s.allocs.each(func(a *allocation) {
		if !keep(a.username) {
			a.revoked.Store(true)
			n++
		}
	})
	return n
}

// endRevoked deletes the allocation of key when it is revoked; ServeSTUN
// calls it when a Refresh fails authentication.
func (s *Server) endRevoked(key fiveTuple) {
	if a := s.allocs.get(key); a != nil && a.revoked.Load() {
		s.remove(a, "user revoked")
	}
}

// Drain stops new allocations: from now on an Allocate for a 5-tuple
// without one gets 300 (Try Alternate) with ALTERNATE-SERVER alt (RFC
// 8489, Section 14.15) when alt is valid, else 508 (Insufficient
// Capacity) saying the server is draining. Existing allocations go on
// until they end. Drain may be called again, to change alt.
func (s *Server) Drain(alt netip.AddrPort) {
	s.draining.Store(&drainState{alt: alt})
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() != nil }

type drainState struct{ alt netip.AddrPort }

// drainAllocate answers an Allocate while draining, or returns nil to let
// allocate go on: when the server is not draining, or the 5-tuple holds
// an allocation already (a retransmission gets its success response).
func (s *Server) drainAllocate(out []byte, r *request) []byte {
	d := s.draining.Load()
	if d == nil || s.allocs.get(r.key) != nil {
		return nil
	}
	if !d.alt.IsValid() {
		return s.fail(out, r, stun.CodeInsufficientCapacity, "Server draining: allocate elsewhere")
	}
	b := stun.AppendHeader(out, stun.Type{Method: r.m.Type.Method, Class: stun.ClassError}, r.m.TransactionID)
	b = stun.AppendErrorCode(b, stun.CodeTryAlternate, "Server draining")
	b = stun.AppendAddress(b, stun.AttrAlternateServer, d.alt)
	return s.finish(b, r)
}
