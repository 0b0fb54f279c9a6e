package turnserver

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
)

// allocate answers an Allocate request. RFC 8656, Section 7.2; the
// numbered steps are the RFC's. Authentication (step 1) and unknown
// attributes are done by ServeSTUN.
func (s *Server) allocate(out []byte, r *request) []byte {
	m := r.m
	// Step 2: the 5-tuple is taken, unless this is a retransmission of
	// the request that created the allocation, which gets the same
	// success response.
	if a := s.allocs.get(r.key); a != nil {
		if a.txID == m.TransactionID && a.username == r.auth.Username {
			return s.allocateSuccess(out, r, a)
		}
		return s.fail(out, r, stun.CodeAllocationMismatch, "")
	}
	// Step 3: REQUESTED-TRANSPORT.
	v, ok := m.Get(stun.AttrRequestedTransport)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "REQUESTED-TRANSPORT missing")
	}
	proto, err := turn.ParseRequestedTransport(v)
	if err != nil {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed REQUESTED-TRANSPORT")
	}
	switch proto {
	case turn.ProtoUDP:
	case turn.ProtoTCP:
		return s.allocateTCP(out, r)
	default:
		return s.fail(out, r, stun.CodeUnsupportedTransportProtocol, "")
	}
	// Step 4: DONT-FRAGMENT. Where DF cannot be set it is an unknown
	// attribute, which ServeSTUN already answered with 420.
	df := m.Has(stun.AttrDontFragment)

	// Step 5: RESERVATION-TOKEN.
	family := turn.FamilyIPv4
	var token [8]byte
	hasToken := false
	if v, ok := m.Get(stun.AttrReservationToken); ok {
		if m.Has(stun.AttrEvenPort) || m.Has(stun.AttrRequestedAddressFamily) || m.Has(stun.AttrAdditionalAddressFamily) {
			return s.fail(out, r, stun.CodeBadRequest, "RESERVATION-TOKEN with EVEN-PORT or an address family")
		}
		if token, err = turn.ParseReservationToken(v); err != nil {
			return s.fail(out, r, stun.CodeBadRequest, "Malformed RESERVATION-TOKEN")
		}
		if family, ok = s.reservationFamily(token); !ok {
			return s.fail(out, r, stun.CodeInsufficientCapacity, "Unknown or expired RESERVATION-TOKEN")
		}
		hasToken = true
	}
	// Step 6.
	if m.Has(stun.AttrRequestedAddressFamily) && m.Has(stun.AttrAdditionalAddressFamily) {
		return s.fail(out, r, stun.CodeBadRequest, "REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-FAMILY")
	}
	// Step 7: the family; IPv4 when none is requested.
	family, failed := s.requestedFamily(out, r, family)
	if failed != nil {
		return failed
	}
	// Step 8: EVEN-PORT.
	even, reserve := false, false
	if v, ok := m.Get(stun.AttrEvenPort); ok {
		if reserve, err = turn.ParseEvenPort(v); err != nil {
			return s.fail(out, r, stun.CodeBadRequest, "Malformed EVEN-PORT")
		}
		even = true
		if reserve && m.Has(stun.AttrAdditionalAddressFamily) {
			return s.fail(out, r, stun.CodeBadRequest, "EVEN-PORT R with ADDITIONAL-ADDRESS-FAMILY")
		}
	}
	// Step 9: ADDITIONAL-ADDRESS-FAMILY (IPv6 beside IPv4).
	dual := false
	if v, ok := m.Get(stun.AttrAdditionalAddressFamily); ok {
		if _, err := turn.ParseAdditionalAddressFamily(v); err != nil {
			return s.fail(out, r, stun.CodeBadRequest, "ADDITIONAL-ADDRESS-FAMILY must be IPv6")
		}
		dual = true
	}
	d, present, ok := requestedLifetime(m)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed LIFETIME")
	}
	lifetime := s.cfg.lifetime(d, present)
	// A reservation is taken out of the table before the quotas are
	// counted: it held one of its user's allocations, which the new
	// allocation may now use.
	var res *reservation
	if hasToken {
		if res = s.redeem(token); res == nil { // taken by a concurrent request since step 5
			return s.fail(out, r, stun.CodeInsufficientCapacity, "Unknown or expired RESERVATION-TOKEN")
		}
	}
	// Step 10: quotas, per user (486) and for the server (508).
	u, code, why := s.admit(quotaKey(r.auth))
	if why == refuseTotalAllocations {
		if alt, ok := s.overflowAlternate(r.key.client); ok {
			if res != nil {
				res.release(s)
			}
			return s.tryAlternate(out, r, alt)
		}
	}
	if code != 0 {
		if res != nil {
			res.release(s)
		}
		return s.refuse(out, r, why, code)
	}
	a := &allocation{
		s:         s,
		key:       r.key,
		conn:      r.req.Conn,
		stream:    r.key.transport != transportUDP,
		user:      u,
		username:  r.auth.Username,
		bucket:    newBucket(s.bandwidthPerAllocation()),
		txID:      m.TransactionID,
		created:   r.now,
		notBefore: r.graveFloor,
	}
	a.peers.Store(emptyPeers)
	a.expires.Store(r.now + int64(lifetime))

	// The relayed transport addresses.
	var relays [2]*relay
	var next *net.UDPConn
	if res != nil {
		if df {
			if err := udpio.SetDontFragment(res.conn, family == turn.FamilyIPv4); err != nil {
				res.release(s)
				s.unadmit(u)
				return s.fail(out, r, stun.CodeServerError, "Cannot set DF")
			}
		}
		relays[familyIndex(family)] = s.newRelay(a, family, res.conn)
	} else {
		conn, nx, err := s.openRelay(family, even, reserve, df)
		if err != nil {
			s.unadmit(u)
			if errors.Is(err, errNoDescriptors) {
				return s.refuse(out, r, refuseDescriptors, stun.CodeInsufficientCapacity)
			}
			return s.refuse(out, r, refusePorts, stun.CodeInsufficientCapacity)
		}
		relays[familyIndex(family)] = s.newRelay(a, family, conn)
		next = nx
	}
	if dual {
		if !s.serves(turn.FamilyIPv6) {
			a.addrErr = stun.CodeAddressFamilyNotSupported
		} else if conn, _, err := s.openRelay(turn.FamilyIPv6, false, false, df); err != nil {
			a.addrErr = stun.CodeInsufficientCapacity
		} else {
			relays[1] = s.newRelay(a, turn.FamilyIPv6, conn)
		}
	}
	if next != nil {
		// The reserved port counts against the user's allocations until
		// it is used or expires.
		var full bool
		if a.token, a.hasToken, full = s.reserve(family, next, r.now, u); !a.hasToken {
			next.Close()
			s.ports[familyIndex(family)].release(addrPortOf(next.LocalAddr()).Port())
			s.fds.release(1)
			if full {
				for _, rl := range relays {
					if rl != nil {
						rl.close()
					}
				}
				s.unadmit(u)
				return s.refuse(out, r, refuseUserAllocations, stun.CodeAllocationQuotaReached)
			}
		}
	}
	// Publish: into the table unless the 5-tuple was taken meanwhile or
	// the server closed; then start the relays.
	if existing := s.commit(a, relays); existing != nil {
		for _, rl := range relays {
			if rl != nil {
				rl.close()
			}
		}
		s.unadmit(u)
		if existing == a {
			return s.fail(out, r, stun.CodeServerError, "")
		}
		return s.fail(out, r, stun.CodeAllocationMismatch, "")
	}
	s.logCreated(a, lifetime)
	return s.allocateSuccess(out, r, a)
}

// requestedLifetime returns the LIFETIME of m and whether it has one; ok
// is false when it is malformed.
func requestedLifetime(m *stun.Message) (d time.Duration, present, ok bool) {
	v, present := m.Get(stun.AttrLifetime)
	if !present {
		return 0, false, true
	}
	d, err := turn.ParseLifetime(v)
	return d, true, err == nil
}

// newRelay wraps a bound socket as a relay of a.
func (s *Server) newRelay(a *allocation, f turn.Family, conn *net.UDPConn) *relay {
	local := addrPortOf(conn.LocalAddr())
	rl := &relay{a: a, family: f, conn: conn, local: local, public: local}
	if tgt, err := udpio.NewTarget(conn, !local.Addr().Is4()); err == nil {
		rl.tgt = tgt
	}
	if pub := s.publicIP[familyIndex(f)]; pub.IsValid() {
		rl.public = netip.AddrPortFrom(pub, local.Port())
	}
	return rl
}

// overflowAlternate returns the first OverflowAlternate of client's
// address family.
func (s *Server) overflowAlternate(client netip.AddrPort) (netip.AddrPort, bool) {
	is4 := client.Addr().Unmap().Is4()
	for _, a := range s.cfg.OverflowAlternates {
		if a.Addr().Unmap().Is4() == is4 {
			return a, true
		}
	}
	return netip.AddrPort{}, false
}

// tryAlternate answers 300 (Try Alternate) with ALTERNATE-SERVER alt,
// signed like any response to an authenticated request (RFC 8489,
// Section 10).
func (s *Server) tryAlternate(out []byte, r *request, alt netip.AddrPort) []byte {
	b := stun.AppendHeader(out, stun.Type{Method: r.m.Type.Method, Class: stun.ClassError}, r.m.TransactionID)
	b = stun.AppendErrorCode(b, stun.CodeTryAlternate, "")
	b = stun.AppendAddress(b, stun.AttrAlternateServer, alt)
	return s.finish(b, r)
}

// admit counts a new allocation against the quotas, or returns the error
// code that refuses it and which quota did. RFC 8656, Section 7.2, step
// 10. A user's allocations include its ports reserved by EVEN-PORT.
func (s *Server) admit(username string) (*user, int, refusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[username]
	q := *s.quota()
	if u != nil && q.AllocationsPerUser > 0 && u.allocs >= q.AllocationsPerUser {
		return nil, stun.CodeAllocationQuotaReached, refuseUserAllocations
	}
	if q.TotalAllocations > 0 && s.count >= q.TotalAllocations {
		return nil, stun.CodeInsufficientCapacity, refuseTotalAllocations
	}
	if u == nil {
		u = &user{name: username, bucket: newBucket(q.BandwidthPerUser)}
		s.users[username] = u
	}
	u.allocs++
	s.count++
	return u, 0, 0
}

func (s *Server) unadmit(u *user) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count--
	s.releaseUserLocked(u)
}

// releaseUserLocked returns one of u's allocations (or reservations) to
// its quota. s.mu must be held.
func (s *Server) releaseUserLocked(u *user) {
	u.allocs--
	if u.allocs == 0 {
		delete(s.users, u.name)
	}
}

// commit publishes a with its relays and starts them. It returns the
// allocation that already holds the 5-tuple, or a itself when the server
// is closed or cannot read relay sockets; nil on success.
func (s *Server) commit(a *allocation, relays [2]*relay) *allocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return a
	}
	if err := s.startPollersLocked(); err != nil {
		s.log.Error("turn relay readers failed to start", "err", err)
		return a
	}
	a.ctgt = s.clientTargetLocked(a.conn)
	if existing := s.allocs.insert(a); existing != nil {
		return existing
	}
	for i, rl := range relays {
		if rl != nil {
			a.relays[i].Store(rl)
			rl.start()
		}
	}
	if a.tcp != nil {
		s.wg.Add(1)
		go s.acceptPeers(a)
	}
	if a.stream {
		a.conn.KeepOpen(true)
	}
	s.startJanitorLocked()
	return nil
}

// clientTargetLocked returns the batched-send Target of conn when it is
// a UDP listening socket, or nil. s.mu must be held.
func (s *Server) clientTargetLocked(conn stunserver.Conn) *udpio.Target {
	u, ok := conn.(stunserver.UDPSocket)
	if !ok {
		return nil
	}
	c := u.UDPConn()
	if t := s.clientTargets[c]; t != nil {
		return t
	}
	t, err := udpio.NewTarget(c, !conn.LocalAddr().Addr().Is4())
	if err != nil {
		return nil
	}
	if s.clientTargets == nil {
		s.clientTargets = make(map[*net.UDPConn]*udpio.Target)
	}
	s.clientTargets[c] = t
	return t
}

// requestedFamily applies REQUESTED-ADDRESS-FAMILY (RFC 8656, Section
// 7.2, step 7; RFC 6156, Section 4.2), when present, to family, and checks
// that the server relays that family. On failure it returns the error
// response, else the family and nil.
func (s *Server) requestedFamily(out []byte, r *request, family turn.Family) (turn.Family, []byte) {
	if v, ok := r.m.Get(stun.AttrRequestedAddressFamily); ok {
		f, err := turn.ParseRequestedAddressFamily(v)
		switch {
		case errors.Is(err, turn.ErrUnsupportedFamily):
			return family, s.fail(out, r, stun.CodeAddressFamilyNotSupported, "")
		case err != nil:
			return family, s.fail(out, r, stun.CodeBadRequest, "Malformed REQUESTED-ADDRESS-FAMILY")
		}
		family = f
	}
	if !s.serves(family) {
		return family, s.fail(out, r, stun.CodeAddressFamilyNotSupported, "")
	}
	return family, nil
}

// allocateSuccess builds the success response of an Allocate. RFC 8656,
// Section 7.2, last paragraphs.
func (s *Server) allocateSuccess(out []byte, r *request, a *allocation) []byte {
	id := r.m.TransactionID
	b := successHeader(out, r)
	for i := range a.relays {
		if rl := a.relays[i].Load(); rl != nil {
			b = stun.AppendXORAddress(b, stun.AttrXORRelayedAddress, rl.public, id)
		}
	}
	if a.tcp != nil {
		b = stun.AppendXORAddress(b, stun.AttrXORRelayedAddress, a.tcp.public, id)
	}
	if a.addrErr != 0 {
		b = turn.AppendAddressErrorCode(b, turn.FamilyIPv6, a.addrErr, "")
	}
	b = turn.AppendLifetime(b, time.Duration(a.expires.Load()-r.now))
	if a.hasToken {
		b = turn.AppendReservationToken(b, a.token)
	}
	b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, r.req.From, id)
	return s.finish(b, r)
}

// lookup finds the allocation of a non-Allocate request and checks its
// username, or builds the error response: 437 when there is none (RFC
// 8656, Section 5), 441 when another user asks (Section 5: "the same
// username as that used to create the allocation").
func (s *Server) lookup(out []byte, r *request) (*allocation, []byte) {
	a := s.allocs.get(r.key)
	if a == nil {
		return nil, s.fail(out, r, stun.CodeAllocationMismatch, "")
	}
	if a.username != r.auth.Username {
		return nil, s.fail(out, r, stun.CodeWrongCredentials, "")
	}
	return a, nil
}

// refresh answers a Refresh request. RFC 8656, Section 8.2.
func (s *Server) refresh(out []byte, r *request) []byte {
	a, fail := s.lookup(out, r)
	if a == nil {
		return fail
	}
	m := r.m
	// A REQUESTED-ADDRESS-FAMILY names the half of a dual allocation to
	// act on; one the allocation lacks is 443 (Section 8.2).
	var only *relay
	if v, ok := m.Get(stun.AttrRequestedAddressFamily); ok {
		f, err := turn.ParseRequestedAddressFamily(v)
		if err != nil && !errors.Is(err, turn.ErrUnsupportedFamily) {
			return s.fail(out, r, stun.CodeBadRequest, "Malformed REQUESTED-ADDRESS-FAMILY")
		}
		switch {
		case err != nil:
			return s.fail(out, r, stun.CodePeerAddressFamilyMismatch, "")
		case a.tcp != nil:
			if a.tcp.family != f {
				return s.fail(out, r, stun.CodePeerAddressFamilyMismatch, "")
			}
		default:
			if only = a.relays[familyIndex(f)].Load(); only == nil {
				return s.fail(out, r, stun.CodePeerAddressFamilyMismatch, "")
			}
		}
	}
	d, present, ok := requestedLifetime(m)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed LIFETIME")
	}
	if present && d == 0 {
		// Delete the allocation, or only the named half of a dual one.
		if only != nil && a.relays[1-familyIndex(only.family)].Load() != nil {
			if a.relays[familyIndex(only.family)].CompareAndSwap(only, nil) {
				only.close()
			}
		} else {
			s.remove(a, "refreshed with lifetime 0")
		}
		b := turn.AppendLifetime(successHeader(out, r), 0)
		return s.finish(b, r)
	}
	// Deviation: both halves of a dual allocation share one
	// time-to-expiry, so refreshing either refreshes both.
	lifetime := s.cfg.lifetime(d, present)
	a.expires.Store(r.now + int64(lifetime))
	b := turn.AppendLifetime(successHeader(out, r), lifetime)
	return s.finish(b, r)
}
