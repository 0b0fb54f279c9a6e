package turnserver

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
)

// permission lets datagrams from one peer IP address through. RFC 8656,
// Section 9.
type permission struct {
	ip      netip.Addr
	expires int64 // on the server's monotonic clock (Server.mono)
}

// channel binds a channel number to a peer transport address. RFC 8656,
// Section 12.
type channel struct {
	num     uint16
	peer    netip.AddrPort
	expires int64
}

// peerTable is an allocation's permissions and channels. It is immutable
// once published: the packet paths read it through an atomic pointer
// without a lock, and every change publishes a new copy. Most allocations
// have a handful of peers, and slices scanned in order beat maps there;
// past indexMin entries a table also carries map indexes, so that the
// per-packet checks stay one lookup at the caps (Quotas.PermissionsPerAllocation,
// the 4096 channel numbers): at 128 permissions a scan costs about 500 ns
// a packet, a lookup 30 ns (BenchmarkPermitted).
type peerTable struct {
	perms []permission
	chans []channel

	permIdx map[netip.Addr]struct{}  // nil below indexMin permissions
	numIdx  map[uint16]int32         // channel number → index in chans; nil below indexMin channels
	peerIdx map[netip.AddrPort]int32 // peer → index in chans
}

// indexMin is the size from which a peerTable indexes its entries.
const indexMin = 8

var emptyPeers = &peerTable{}

// index builds the indexes of a table about to be published, a copy of
// old: an index whose entries did not move (a refresh changes expiry
// times only) is shared with old instead of rebuilt.
func (t *peerTable) index(old *peerTable) {
	t.permIdx, t.numIdx, t.peerIdx = nil, nil, nil
	if old.permIdx != nil && slices.EqualFunc(t.perms, old.perms, func(a, b permission) bool { return a.ip == b.ip }) {
		t.permIdx = old.permIdx
	} else if len(t.perms) > indexMin {
		t.permIdx = make(map[netip.Addr]struct{}, len(t.perms))
		for _, p := range t.perms {
			t.permIdx[p.ip] = struct{}{}
		}
	}
	if old.numIdx != nil && slices.EqualFunc(t.chans, old.chans, func(a, b channel) bool { return a.num == b.num && a.peer == b.peer }) {
		t.numIdx, t.peerIdx = old.numIdx, old.peerIdx
	} else if len(t.chans) > indexMin {
		t.numIdx = make(map[uint16]int32, len(t.chans))
		t.peerIdx = make(map[netip.AddrPort]int32, len(t.chans))
		for i, c := range t.chans {
			t.numIdx[c.num] = int32(i)
			t.peerIdx[c.peer] = int32(i)
		}
	}
}

func (t *peerTable) permitted(ip netip.Addr) bool {
	if t.permIdx != nil {
		_, ok := t.permIdx[ip]
		return ok
	}
	for i := range t.perms {
		if t.perms[i].ip == ip {
			return true
		}
	}
	return false
}

func (t *peerTable) peerOf(num uint16) (netip.AddrPort, bool) {
	if t.numIdx != nil {
		i, ok := t.numIdx[num]
		if !ok {
			return netip.AddrPort{}, false
		}
		return t.chans[i].peer, true
	}
	for i := range t.chans {
		if t.chans[i].num == num {
			return t.chans[i].peer, true
		}
	}
	return netip.AddrPort{}, false
}

func (t *peerTable) channelOf(peer netip.AddrPort) (uint16, bool) {
	if t.peerIdx != nil {
		i, ok := t.peerIdx[peer]
		if !ok {
			return 0, false
		}
		return t.chans[i].num, true
	}
	for i := range t.chans {
		if t.chans[i].peer == peer {
			return t.chans[i].num, true
		}
	}
	return 0, false
}

// flow counts one direction of an allocation's traffic. Each direction is
// written by one goroutine at a time in the common case (the listener's
// reader towards the peer, the relay's reader towards the client), so the
// two live on separate cache lines.
type flow struct {
	packets, bytes                  atomic.Uint64
	droppedQuota, droppedPolicy     atomic.Uint64
	droppedNoPermission, sendErrors atomic.Uint64
	_                               [16]byte
}

// allocation is the server's state for one 5-tuple. RFC 8656, Section 2.2.
//
// The packet paths read conn, ctgt, stream, key, user, bucket and the relays
// without a lock: those are set before the allocation is published, except
// the relay pointers, which are atomic. mu serialises changes to the peer
// table and deletion.
type allocation struct {
	s    *Server
	key  fiveTuple
	conn stunserver.Conn // towards the client
	// ctgt is conn's socket for batched sends when conn is a UDP
	// listening socket; nil otherwise. It is shared by the allocations of
	// that socket.
	ctgt   *udpio.Target
	stream bool // the client is on TCP or TLS: pad ChannelData
	user   *user
	// username is the USERNAME that created the allocation, which every
	// later request must use (RFC 8656, Section 5).
	username string
	bucket   *bucket // nil: no per-allocation bandwidth limit
	relays   [2]atomic.Pointer[relay]
	tcp      *tcpRelay // a TCP allocation's listener (RFC 6062); nil for UDP

	// What the Allocate success response said, to answer a
	// retransmission of it alike (RFC 8656, Section 7.2).
	txID     stun.TransactionID
	token    [8]byte
	hasToken bool
	addrErr  int // ADDRESS-ERROR-CODE for the IPv6 half of a dual allocation

	peers   atomic.Pointer[peerTable]
	expires atomic.Int64
	created int64 // Server.mono() at creation, for the usage record
	// notBefore is the last deletion on key that the graveyard knew of
	// when the allocation was made (Unix microseconds): a request signed
	// with a nonce issued before it is refused (Server.replayed).
	notBefore int64

	mu   sync.Mutex
	gone bool // deleted

	// RFC 6062 peer connections of a TCP allocation, guarded by Server.mu:
	// all of them, and those still dialling.
	tcpConns, connecting int

	revoked atomic.Bool // its user is gone: end it at its next failed Refresh (reload.go)

	toPeer, toClient flow
}

// familyIndex maps a family to the index of relays and of the server's
// per-family tables.
func familyIndex(f turn.Family) int {
	if f == turn.FamilyIPv6 {
		return 1
	}
	return 0
}

func familyOf(a netip.Addr) turn.Family {
	if a.Is4() {
		return turn.FamilyIPv4
	}
	return turn.FamilyIPv6
}

// relayFor returns the relay that reaches peer, or nil when the
// allocation has none of the peer's family.
func (a *allocation) relayFor(peer netip.Addr) *relay {
	if peer.Is4() {
		return a.relays[0].Load()
	}
	return a.relays[1].Load()
}

// hasFamily reports whether the allocation has a relayed address of
// peer's family, UDP or TCP.
func (a *allocation) hasFamily(peer netip.Addr) bool {
	if a.tcp != nil {
		return a.tcp.family == familyOf(peer)
	}
	return a.relayFor(peer) != nil
}

// permitResult is the outcome of a CreatePermission on the peer table.
type permitResult uint8

const (
	permitOK      permitResult = iota
	permitDeleted              // the allocation is gone
	permitFull                 // the permissions would pass the cap
)

// permit installs or refreshes permissions for ips until the given time,
// all or none: none when the new ones would take the allocation past
// limit permissions (limit <= 0: no limit). RFC 8656, Section 9.
func (a *allocation) permit(ips []netip.Addr, until int64, limit int) permitResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		return permitDeleted
	}
	old := a.peers.Load()
	if limit > 0 && len(old.perms)+len(ips) > limit {
		added := 0
		for i, ip := range ips {
			if !old.permitted(ip) && !slices.Contains(ips[:i], ip) {
				added++
			}
		}
		if len(old.perms)+added > limit {
			return permitFull
		}
	}
	t := &peerTable{perms: slices.Clone(old.perms), chans: old.chans}
	for _, ip := range ips {
		t.addPermission(ip, until)
	}
	t.index(old)
	a.peers.Store(t)
	return permitOK
}

func (t *peerTable) addPermission(ip netip.Addr, until int64) {
	for i := range t.perms {
		if t.perms[i].ip == ip {
			t.perms[i].expires = until
			return
		}
	}
	t.perms = append(t.perms, permission{ip: ip, expires: until})
}

// bindResult is the outcome of a ChannelBind on the peer table.
type bindResult uint8

const (
	bindOK bindResult = iota
	bindChannelTaken
	bindPeerTaken
	bindDeleted
	bindFull // the peer's permission would pass the cap
)

// bind binds num to peer, or refreshes that binding, until chanUntil, and
// installs or refreshes the permission for the peer's IP until permUntil.
// RFC 8656, Section 12.2: a channel already bound to another peer, or a
// peer already bound to another channel, is refused.
func (a *allocation) bind(num uint16, peer netip.AddrPort, chanUntil, permUntil int64, permLimit int) bindResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		return bindDeleted
	}
	old := a.peers.Load()
	if permLimit > 0 && len(old.perms) >= permLimit && !old.permitted(peer.Addr()) {
		return bindFull
	}
	idx := -1
	for i, c := range old.chans {
		switch {
		case c.num == num && c.peer == peer:
			idx = i
		case c.num == num:
			return bindChannelTaken
		case c.peer == peer:
			return bindPeerTaken
		}
	}
	t := &peerTable{perms: slices.Clone(old.perms), chans: slices.Clone(old.chans)}
	if idx >= 0 {
		t.chans[idx].expires = chanUntil
	} else {
		t.chans = append(t.chans, channel{num: num, peer: peer, expires: chanUntil})
	}
	t.addPermission(peer.Addr(), permUntil)
	t.index(old)
	a.peers.Store(t)
	return bindOK
}

// expirePeers removes the permissions and channels that expired by now.
// It reads the table without the lock first, since usually nothing
// expired.
func (a *allocation) expirePeers(now int64) {
	if !a.peers.Load().hasExpired(now) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.peers.Load()
	t := &peerTable{}
	for _, p := range old.perms {
		if p.expires > now {
			t.perms = append(t.perms, p)
		}
	}
	for _, c := range old.chans {
		if c.expires > now {
			t.chans = append(t.chans, c)
		}
	}
	t.index(old)
	a.peers.Store(t)
}

func (t *peerTable) hasExpired(now int64) bool {
	for _, p := range t.perms {
		if p.expires <= now {
			return true
		}
	}
	for _, c := range t.chans {
		if c.expires <= now {
			return true
		}
	}
	return false
}
