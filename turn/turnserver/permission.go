package turnserver

import (
	"net/netip"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// permissionCheckPort stands in for port 0 when the policy judges the
// address of a CreatePermission: the port of XOR-PEER-ADDRESS is ignored
// there (RFC 8656, Section 10.2) and may be 0, which the policy refuses.
const permissionCheckPort = 9

// createPermission answers a CreatePermission request: every
// XOR-PEER-ADDRESS gets a permission, or none does. RFC 8656, Section
// 10.2.
func (s *Server) createPermission(out []byte, r *request) []byte {
	a, fail := s.lookup(out, r)
	if a == nil {
		return fail
	}
	var buf [8]netip.Addr
	ips := buf[:0]
	limit := s.quota().PermissionsPerAllocation
	for _, at := range r.m.Attrs {
		if at.Type != stun.AttrXORPeerAddress {
			continue
		}
		peer, err := parsePeer(at.Value, r.m.TransactionID)
		if err != nil {
			return s.fail(out, r, stun.CodeBadRequest, "Malformed XOR-PEER-ADDRESS")
		}
		if !a.hasFamily(peer.Addr()) {
			return s.fail(out, r, stun.CodePeerAddressFamilyMismatch, "")
		}
		judged := peer
		if judged.Port() == 0 {
			judged = netip.AddrPortFrom(peer.Addr(), permissionCheckPort)
		}
		if code := s.judge(judged); code != 0 {
			return s.refuse(out, r, refusePolicy, code)
		}
		ips = append(ips, peer.Addr())
		if limit > 0 && len(ips) > limit {
			// More peers than an allocation may hold: refused before
			// judging (and collecting) the rest.
			return s.refuse(out, r, refusePermissions, stun.CodeInsufficientCapacity)
		}
	}
	if len(ips) == 0 {
		return s.fail(out, r, stun.CodeBadRequest, "XOR-PEER-ADDRESS missing")
	}
	switch a.permit(ips, r.now+int64(s.cfg.PermissionLifetime), s.quota().PermissionsPerAllocation) {
	case permitDeleted:
		return s.fail(out, r, stun.CodeAllocationMismatch, "")
	case permitFull:
		return s.refuse(out, r, refusePermissions, stun.CodeInsufficientCapacity)
	}
	return s.finish(successHeader(out, r), r)
}

// judge asks the policy about peer: 0 when it is allowed, 403 otherwise.
// RFC 8656, Section 21.1 lets the server restrict peers.
func (s *Server) judge(peer netip.AddrPort) int {
	if err := s.policy.Check(peer); err != nil {
		s.log.Debug("turn peer refused", "peer", peer.String(), "err", err)
		return stun.CodeForbidden
	}
	return 0
}

// channelBind answers a ChannelBind request. RFC 8656, Section 12.2.
func (s *Server) channelBind(out []byte, r *request) []byte {
	a, fail := s.lookup(out, r)
	if a == nil {
		return fail
	}
	if a.tcp != nil {
		return s.fail(out, r, stun.CodeBadRequest, "No channels on a TCP allocation")
	}
	m := r.m
	cv, ok := m.Get(stun.AttrChannelNumber)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "CHANNEL-NUMBER missing")
	}
	num, err := turn.ParseChannelNumber(cv)
	if err != nil {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed CHANNEL-NUMBER")
	}
	if !turn.ValidChannel(num, s.cfg.LooseChannels) {
		return s.fail(out, r, stun.CodeBadRequest, "Channel number out of range")
	}
	pv, ok := m.Get(stun.AttrXORPeerAddress)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "XOR-PEER-ADDRESS missing")
	}
	peer, err := parsePeer(pv, m.TransactionID)
	if err != nil {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed XOR-PEER-ADDRESS")
	}
	if a.relayFor(peer.Addr()) == nil {
		return s.fail(out, r, stun.CodePeerAddressFamilyMismatch, "")
	}
	if code := s.judge(peer); code != 0 {
		return s.refuse(out, r, refusePolicy, code)
	}
	switch a.bind(num, peer, r.now+int64(s.cfg.ChannelLifetime), r.now+int64(s.cfg.PermissionLifetime), s.quota().PermissionsPerAllocation) {
	case bindFull:
		return s.refuse(out, r, refusePermissions, stun.CodeInsufficientCapacity)
	case bindChannelTaken:
		return s.fail(out, r, stun.CodeBadRequest, "Channel bound to another peer")
	case bindPeerTaken:
		return s.fail(out, r, stun.CodeBadRequest, "Peer bound to another channel")
	case bindDeleted:
		return s.fail(out, r, stun.CodeAllocationMismatch, "")
	}
	return s.finish(successHeader(out, r), r)
}

// parsePeer parses an XOR-PEER-ADDRESS value of the message with
// transaction ID id, an IPv4-mapped address unmapped: the form the policy,
// the permissions and the relay sockets compare.
func parsePeer(v []byte, id stun.TransactionID) (netip.AddrPort, error) {
	p, err := stun.ParseXORAddress(v, id)
	return netip.AddrPortFrom(p.Addr().Unmap(), p.Port()), err
}
