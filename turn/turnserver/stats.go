package turnserver

import "github.com/icebreaker-net/icebreaker/turn/turnauth"

// Stats is a snapshot of a Server's state and counters. Counters only
// grow; Allocations, Permissions, Channels and Reservations are current.
type Stats struct {
	Allocations  int // allocations now
	Permissions  int // permissions now, over all allocations
	Channels     int // channel bindings now
	Reservations int // ports reserved by EVEN-PORT now

	// Relayed traffic: client to peer, and peer to client.
	ToPeerPackets, ToPeerBytes     uint64
	ToClientPackets, ToClientBytes uint64

	DroppedPolicy       uint64 // Send indications to a peer the policy denies
	DroppedQuota        uint64 // packets over a bandwidth quota
	DroppedNoPermission uint64 // packets without a permission or channel, either way
	DroppedNoAllocation uint64 // Send and ChannelData on a 5-tuple without an allocation
	DroppedMalformed    uint64 // malformed Send indications and ChannelData
	SendErrors          uint64 // relay sends to peers the kernel refused
	ClientSendErrors    uint64 // sends to clients that failed (full TCP queue, closed socket)
	ReadErrors          uint64 // failed relay socket reads
	GSODisabled         uint64 // relay and listening sockets that fell back from UDP GSO to sendmmsg (the kernel refused it)

	// Authentication failures (401, 438, 400, 500), by reason; the first
	// challenge of an exchange is not one.
	AuthBadRequest   uint64 // malformed or missing credential attributes (400)
	AuthWrongRealm   uint64 // a REALM other than the server's
	AuthUnknownUser  uint64 // no such user
	AuthBadIntegrity uint64 // wrong password, key or REST secret
	AuthStaleNonce   uint64 // expired nonce, one issued to another client transport address, or a NonceReplays one
	AuthExpiredREST  uint64 // Allocate with REST credentials past their expiry
	AuthLookupErrors uint64 // the user store failed (500)
	NonceReplays     uint64 // 438: a nonce older than the last deletion of an allocation on the request's 5-tuple

	// Refusals by policy (403) and by quota (486, 508), by which.
	RefusedPolicy             uint64 // peer denied by the peer policy
	RefusedAllocationsPerUser uint64 // 486: allocations (and reservations) per user
	RefusedTotalAllocations   uint64 // 508: allocations of the server
	RefusedRelayPorts         uint64 // 508: no relay port free
	RefusedPermissions        uint64 // 508: permissions per allocation
	RefusedConnects           uint64 // 508: pending Connects per allocation
	RefusedUserConnects       uint64 // 486: pending Connects per user
	RefusedTCPConnections     uint64 // 508: relayed TCP connections per allocation
	RefusedDescriptors        uint64 // 508: the server's descriptor budget
	ErrorsRateLimited         uint64 // error answers to unauthenticated requests not sent: the source's rate was spent
}

// totals are the counters of deleted allocations, folded in as they go.
type totals struct {
	toPeer, toClient [6]uint64
}

func (f *flow) snapshot() [6]uint64 {
	return [6]uint64{f.packets.Load(), f.bytes.Load(), f.droppedQuota.Load(),
		f.droppedPolicy.Load(), f.droppedNoPermission.Load(), f.sendErrors.Load()}
}

func (t *totals) add(a *allocation) {
	p, c := a.toPeer.snapshot(), a.toClient.snapshot()
	for i := range p {
		t.toPeer[i] += p[i]
		t.toClient[i] += c[i]
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	var t totals
	var st Stats
	s.allocs.each(func(a *allocation) {
		t.add(a)
		p := a.peers.Load()
		st.Permissions += len(p.perms)
		st.Channels += len(p.chans)
	})
	s.mu.Lock()
	st.Allocations = s.count
	st.Reservations = len(s.reservations)
	for i := range t.toPeer {
		t.toPeer[i] += s.gone.toPeer[i]
		t.toClient[i] += s.gone.toClient[i]
	}
	s.mu.Unlock()
	st.ToPeerPackets, st.ToPeerBytes = t.toPeer[0], t.toPeer[1]
	st.ToClientPackets, st.ToClientBytes = t.toClient[0], t.toClient[1]
	st.DroppedQuota = t.toPeer[2] + t.toClient[2]
	st.DroppedPolicy = t.toPeer[3] + t.toClient[3]
	st.DroppedNoPermission = t.toPeer[4] + t.toClient[4]
	st.SendErrors = t.toPeer[5]
	st.ClientSendErrors = t.toClient[5]
	st.DroppedNoAllocation = s.droppedNoAllocation.Load()
	st.DroppedMalformed = s.droppedMalformed.Load()
	st.ReadErrors = s.readErrors.Load()
	st.GSODisabled = s.gsoDisabled.Load()
	f := &s.abuse.authFailed
	st.AuthBadRequest, st.AuthWrongRealm = f[turnauth.BadRequest].Load(), f[turnauth.WrongRealm].Load()
	st.AuthUnknownUser, st.AuthBadIntegrity = f[turnauth.UnknownUser].Load(), f[turnauth.BadIntegrity].Load()
	st.AuthStaleNonce, st.AuthExpiredREST = f[turnauth.StaleNonce].Load(), f[turnauth.ExpiredREST].Load()
	st.AuthLookupErrors = f[turnauth.LookupError].Load()
	st.NonceReplays = s.abuse.nonceReplays.Load()
	rf := &s.abuse.refused
	st.RefusedPolicy = rf[refusePolicy].Load()
	st.RefusedAllocationsPerUser = rf[refuseUserAllocations].Load()
	st.RefusedTotalAllocations = rf[refuseTotalAllocations].Load()
	st.RefusedRelayPorts = rf[refusePorts].Load()
	st.RefusedPermissions = rf[refusePermissions].Load()
	st.RefusedConnects = rf[refuseConnects].Load()
	st.RefusedUserConnects = rf[refuseUserConnects].Load()
	st.RefusedTCPConnections = rf[refuseTCPConnections].Load()
	st.RefusedDescriptors = rf[refuseDescriptors].Load()
	st.ErrorsRateLimited = s.abuse.errorsLimited.Load()
	return st
}
