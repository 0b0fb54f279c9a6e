package turnserver

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Session describes one allocation for an operator (coturn's telnet `ps`).
// It is a snapshot: a plain value the caller owns.
type Session struct {
	// ID names the allocation for KillSession: 16 hex digits, stable for
	// the allocation's life, different for every allocation.
	ID        string         `json:"id"`
	User      string         `json:"user"` // the USERNAME that created it
	Client    netip.AddrPort `json:"client"`
	Server    netip.AddrPort `json:"server"`    // the listener the client talks to
	Transport string         `json:"transport"` // udp, tcp or tls: client to server
	// Relayed lists the advertised relayed addresses ("tcp ADDR" for an
	// RFC 6062 allocation).
	Relayed []string      `json:"relayed"`
	Age     time.Duration `json:"age_ns"`
	Expires time.Duration `json:"expires_ns"` // time left until it expires
	// Permissions are the peer IPs with a permission; Channels the peers
	// bound to a channel.
	Permissions []netip.Addr     `json:"permissions"`
	Channels    []netip.AddrPort `json:"channels"`
	// Relayed traffic: client to peers, and peers to client.
	ToPeerPackets   uint64 `json:"to_peer_packets"`
	ToPeerBytes     uint64 `json:"to_peer_bytes"`
	ToClientPackets uint64 `json:"to_client_packets"`
	ToClientBytes   uint64 `json:"to_client_bytes"`
	Revoked         bool   `json:"revoked,omitzero"` // its user is gone (RevokeUsers)
}

// Sessions returns the current allocations, oldest first; with user not
// empty, only that user's (matched against the USERNAME and, for TURN REST
// credentials, the user part that quotas count).
func (s *Server) Sessions(user string) []Session {
	now := s.mono()
	var out []Session
	s.allocs.each(func(a *allocation) {
		if user != "" && a.username != user && a.user.name != user {
			return
		}
		out = append(out, a.session(now))
	})
	slices.SortFunc(out, func(x, y Session) int {
		if c := cmp.Compare(y.Age, x.Age); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

func (a *allocation) session(now int64) Session {
	p, c := a.toPeer.snapshot(), a.toClient.snapshot()
	t := a.peers.Load()
	ss := Session{
		ID:              a.id(),
		User:            a.username,
		Client:          a.key.client,
		Server:          a.key.server,
		Transport:       transportName(a.key.transport),
		Relayed:         a.relayAddrs(),
		Age:             time.Duration(now - a.created).Round(time.Second),
		Expires:         max(0, time.Duration(a.expires.Load()-now).Round(time.Second)),
		ToPeerPackets:   p[0],
		ToPeerBytes:     p[1],
		ToClientPackets: c[0],
		ToClientBytes:   c[1],
		Revoked:         a.revoked.Load(),
	}
	for _, pm := range t.perms {
		ss.Permissions = append(ss.Permissions, pm.ip)
	}
	for _, ch := range t.chans {
		ss.Channels = append(ss.Channels, ch.peer)
	}
	return ss
}

// id derives the allocation's ID from its 5-tuple and creation time, so
// that a new allocation on a reused 5-tuple gets a new one.
func (a *allocation) id() string {
	h := fnv.New64a()
	var b [8]byte
	for _, ap := range []netip.AddrPort{a.key.client, a.key.server} {
		ip := ap.Addr().As16()
		h.Write(ip[:])
		binary.BigEndian.PutUint16(b[:2], ap.Port())
		h.Write(b[:2])
	}
	b[0] = a.key.transport
	h.Write(b[:1])
	binary.BigEndian.PutUint64(b[:], uint64(a.created))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil))
}

// KillSession deletes the allocation with the given ID (see Session), as
// its expiry would: the usage record says "killed". It reports whether
// there was one.
func (s *Server) KillSession(id string) bool {
	var found *allocation
	s.allocs.each(func(a *allocation) {
		if found == nil && a.id() == id {
			found = a
		}
	})
	if found == nil {
		return false
	}
	s.remove(found, "killed")
	return true
}

// KillUser deletes every allocation of user (matched as in Sessions) and
// returns how many it deleted.
func (s *Server) KillUser(user string) int {
	var due []*allocation
	s.allocs.each(func(a *allocation) {
		if a.username == user || a.user.name == user {
			due = append(due, a)
		}
	})
	for _, a := range due {
		s.remove(a, "killed")
	}
	return len(due)
}
