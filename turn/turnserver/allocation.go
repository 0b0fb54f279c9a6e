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
// without a lock, and every change publishes a new copy. Allocations
// have a handful of peers, so slices scanned in order beat maps.
type peerTable struct {
	perms []permission
	chans []channel
}

var emptyPeers = &peerTable{}

func (t *peerTable) permitted(ip netip.Addr) bool {
	for i := range t.perms {
		if t.perms[i].ip == ip {
			return true
		}
	}
	return false
}

func (t *peerTable) peerOf(num uint16) (netip.AddrPort, bool) {
	for i := range t.chans {
		if t.chans[i].num == num {
			return t.chans[i].peer, true
		}
	}
	return netip.AddrPort{}, false
}

func (t *peerTable) channelOf(peer netip.AddrPort) (uint16, bool) {
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

	mu   sync.Mutex
	gone bool // deleted

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

// permit installs or refreshes permissions for ips until the given time.
// RFC 8656, Section 9.
func (a *allocation) permit(ips []netip.Addr, until int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		return false
	}
	old := a.peers.Load()
	t := &peerTable{perms: slices.Clone(old.perms), chans: old.chans}
	for _, ip := range ips {
		t.addPermission(ip, until)
	}
	a.peers.Store(t)
	return true
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
)

// bind binds num to peer, or refreshes that binding, until chanUntil, and
// installs or refreshes the permission for the peer's IP until permUntil.
// RFC 8656, Section 12.2: a channel already bound to another peer, or a
// peer already bound to another channel, is refused.
func (a *allocation) bind(num uint16, peer netip.AddrPort, chanUntil, permUntil int64) bindResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		return bindDeleted
	}
	old := a.peers.Load()
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
