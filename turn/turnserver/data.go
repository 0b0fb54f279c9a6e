package turnserver

import (
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"net/netip"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
)

// The relaying paths of RFC 8656: Send indications (Section 11.2) and
// ChannelData (Section 12.5) from the client to a peer, and datagrams from
// a peer to the client as Data indications (Section 11.3) or ChannelData
// (Section 12.7). None of them allocates or takes a lock in the common
// case: the allocation is found under a shard's read lock, its peer table
// is an atomically published snapshot, and the counters are atomic.

// headroom is the room before a peer's datagram in a read buffer for the
// longest header the server puts in front of it: a Data indication's STUN
// header, XOR-PEER-ADDRESS of an IPv6 peer and the DATA attribute header.
const headroom = stun.HeaderSize + stun.AttrHeaderSize + 20 + stun.AttrHeaderSize

// fromPeer relays the datagram slot[headroom:][:n] from peer to the
// client, if a permission lets it in, building the message in slot as
// toClientMessage does. RFC 8656, Sections 9, 11.3 and 12.7.
func (r *relay) fromPeer(slot []byte, n int, peer netip.AddrPort, rng *mrand.ChaCha8) {
	msg := r.toClientMessage(slot, n, peer, rng)
	if msg == nil {
		return
	}
	f := &r.a.toClient
	if err := r.a.conn.WriteTo(msg, r.a.key.client); err != nil {
		f.sendErrors.Add(1)
		return
	}
	f.packets.Add(1)
	f.bytes.Add(uint64(n))
}

// toClientMessage checks the datagram slot[headroom:][:n] from peer and
// builds in slot, around it, the ChannelData message or Data indication
// that carries it to the client; slot must have room for padding after
// the data. It returns nil when the datagram is dropped (and counted).
func (r *relay) toClientMessage(slot []byte, n int, peer netip.AddrPort, rng *mrand.ChaCha8) []byte {
	a := r.a
	f := &a.toClient
	peers := a.peers.Load()
	if !peers.permitted(peer.Addr()) {
		f.droppedNoPermission.Add(1)
		return nil
	}
	if !a.s.allowBandwidth(a, n) {
		f.droppedQuota.Add(1)
		return nil
	}
	data := slot[headroom : headroom+n]
	if ch, ok := peers.channelOf(peer); ok {
		// Built in place: the header goes right before the data.
		return turn.AppendChannelData(slot[headroom-turn.ChannelDataHeaderSize:][:0], ch, data, a.stream)
	}
	return dataIndication(slot, rng, peer, data)
}

// dataIndication builds a Data indication around data in place: data is
// slot[headroom:], and the header and XOR-PEER-ADDRESS go right before it.
// RFC 8656, Section 11.3.
func dataIndication(slot []byte, rng *mrand.ChaCha8, peer netip.AddrPort, data []byte) []byte {
	addrLen := 8
	if peer.Addr().Is6() {
		addrLen = 20
	}
	start := headroom - (stun.HeaderSize + stun.AttrHeaderSize + addrLen + stun.AttrHeaderSize)
	var id stun.TransactionID
	binary.LittleEndian.PutUint64(id[0:8], rng.Uint64())
	binary.LittleEndian.PutUint32(id[8:12], uint32(rng.Uint64()))
	b := stun.AppendHeader(slot[start:start], dataIndicationType, id)
	b = stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
	return stun.AppendAttr(b, stun.AttrData, data)
}

var dataIndicationType = stun.Type{Method: stun.MethodData, Class: stun.ClassIndication}

// serveSend relays the DATA of a Send indication to its XOR-PEER-ADDRESS.
// Anything wrong drops it silently, as indications get no answer.
// RFC 8656, Section 11.2.
func (s *Server) serveSend(req *stunserver.Request) {
	m := req.Msg
	a := s.allocs.get(fiveTuple{req.From, req.Local, transportOf(req.Network)})
	if a == nil {
		s.droppedNoAllocation.Add(1)
		return
	}
	f := &a.toPeer
	var pv, data []byte
	var hasData bool
	for _, at := range m.Attrs {
		switch at.Type {
		case stun.AttrXORPeerAddress:
			if pv == nil {
				pv = at.Value
			}
		case stun.AttrData:
			if !hasData {
				data, hasData = at.Value, true
			}
		case stun.AttrDontFragment:
			// Honoured when the allocation asked for DF; otherwise
			// sent as is (RFC 8656, Section 14 allows that).
		default:
			if at.Type.ComprehensionRequired() && !knownAttr(at.Type) {
				s.droppedMalformed.Add(1) // RFC 8489, Section 6.3.2
				return
			}
		}
	}
	if pv == nil || !hasData {
		s.droppedMalformed.Add(1)
		return
	}
	peer, err := parsePeer(pv, m.TransactionID)
	if err != nil {
		s.droppedMalformed.Add(1)
		return
	}
	if !a.peers.Load().permitted(peer.Addr()) {
		f.droppedNoPermission.Add(1)
		return
	}
	if !s.policy.Allowed(peer) {
		f.droppedPolicy.Add(1)
		return
	}
	r := a.relayFor(peer.Addr())
	if r == nil {
		f.droppedNoPermission.Add(1) // a permission of the other family cannot exist
		return
	}
	if !s.allowBandwidth(a, len(data)) {
		f.droppedQuota.Add(1)
		return
	}
	r.send(data, peer, f)
}

// FrameOther decides which messages that are not STUN the server takes
// from a client, and frames them on TCP and TLS; it implements
// stunserver.OtherHandler. It takes ChannelData, by turn's one rule
// (turn.FrameChannelData): channel numbers 0x4000-0x4FFF, or 0x4000-0x7FFF
// with Config.LooseChannels. RFC 8656, Sections 12.4 and 12.5.
//
// Over TCP and TLS a frame of up to 64 KiB is read whole before it is
// relayed, so it is taken only on a connection whose allocation has a
// channel (Section 12.1: ChannelData needs a bound channel): anything else
// would let a client that never authenticated make the server hold large
// buffers. The STUN server closes a connection whose frame is refused.
func (s *Server) FrameOther(c stunserver.Conn, b []byte) (n, need int, err error) {
	n, need, err = turn.FrameChannelData(b, s.cfg.LooseChannels)
	if err != nil || c.Network() == "udp" {
		return n, need, err
	}
	a := s.allocs.get(fiveTuple{c.RemoteAddr(), c.LocalAddr(), transportOf(c.Network())})
	if a == nil || len(a.peers.Load().chans) == 0 {
		return 0, 0, errNoChannel
	}
	return n, need, nil
}

var errNoChannel = errors.New("turnserver: ChannelData on a connection without a channel")

// ServeOther relays a ChannelData message from a client to the peer its
// channel is bound to; it implements stunserver.OtherHandler. Messages on
// an unbound channel, for a peer without a permission or without an
// allocation are dropped. RFC 8656, Section 12.5.
func (s *Server) ServeOther(req *stunserver.Request, frame []byte) {
	if r, data, peer, f := s.channelDataRoute(req, frame); r != nil {
		r.send(data, peer, f)
	}
}

// channelDataRoute checks a ChannelData message from a client and returns
// the relay, data and peer to send it with, and the flow to count it in;
// r is nil when the message is dropped (and counted).
func (s *Server) channelDataRoute(req *stunserver.Request, frame []byte) (r *relay, data []byte, peer netip.AddrPort, f *flow) {
	a := s.allocs.get(fiveTuple{req.From, req.Local, transportOf(req.Network)})
	if a == nil {
		s.droppedNoAllocation.Add(1)
		return nil, nil, peer, nil
	}
	ch, data, err := turn.ParseChannelData(frame)
	if err != nil {
		s.droppedMalformed.Add(1)
		return nil, nil, peer, nil
	}
	f = &a.toPeer
	peers := a.peers.Load()
	peer, ok := peers.peerOf(ch)
	if !ok || !peers.permitted(peer.Addr()) {
		f.droppedNoPermission.Add(1)
		return nil, nil, peer, nil
	}
	r = a.relayFor(peer.Addr())
	if r == nil {
		f.droppedNoPermission.Add(1)
		return nil, nil, peer, nil
	}
	if !s.allowBandwidth(a, len(data)) {
		f.droppedQuota.Add(1)
		return nil, nil, peer, nil
	}
	return r, data, peer, f
}

// NewOtherBatch returns the state with which one UDP receive goroutine
// relays ChannelData in batches; it implements stunserver.OtherBatcher.
func (s *Server) NewOtherBatch() stunserver.OtherBatch {
	return &channelDataBatch{
		s:      s,
		sender: udpio.NewSender(),
		pend:   make([]pendingSend, 0, maxPending),
		msgs:   make([]udpio.Message, 0, maxPending),
		one:    make([]udpio.Message, 0, maxPending),
		oneTgt: make([]*udpio.Target, 0, maxPending),
		oneF:   make([]*flow, 0, maxPending),
	}
}

// maxPending bounds the ChannelData messages a batch holds before it
// sends them; the server's receive batches are smaller.
const maxPending = 64

// channelDataBatch collects the ChannelData messages of one receive batch
// and sends them at Flush, in the order they arrived for each relay
// socket: a relay with several messages gets one udpio.Sender.Send (one
// sendmmsg, with runs to one peer sent as UDP GSO datagrams); the relays
// with one message each (many allocations at modest rates) share one
// Sender.SendSpread, one system call for all of them where the kernel has
// io_uring. The checks (channel, permission, quota) are done at
// ServeOther, as without batching. It is used by one goroutine.
type channelDataBatch struct {
	s      *Server
	sender *udpio.Sender
	pend   []pendingSend
	msgs   []udpio.Message // scratch of one relay's messages
	// The messages of relays that have one in this batch, with their
	// sockets and flows, for SendSpread.
	one    []udpio.Message
	oneTgt []*udpio.Target
	oneF   []*flow
	// gsoDisabled is sender.GSODisabled() as last added to the server's
	// counter.
	gsoDisabled uint64
}

type pendingSend struct {
	r    *relay // nil once sent
	f    *flow
	data []byte
	peer netip.AddrPort
}

// ServeOther checks the ChannelData message and queues it for Flush;
// frame must stay valid until then.
func (b *channelDataBatch) ServeOther(req *stunserver.Request, frame []byte) {
	r, data, peer, f := b.s.channelDataRoute(req, frame)
	if r == nil {
		return
	}
	if r.tgt == nil {
		r.send(data, peer, f)
		return
	}
	if len(b.pend) == cap(b.pend) {
		b.Flush()
	}
	b.pend = append(b.pend, pendingSend{r: r, f: f, data: data, peer: peer})
}

// Flush sends what is queued. A failed message is counted and dropped
// alone; it never ends the allocation (see relay.send).
func (b *channelDataBatch) Flush() {
	for i := range b.pend {
		r, f := b.pend[i].r, b.pend[i].f
		if r == nil {
			continue
		}
		msgs := b.msgs[:0]
		for j := i; j < len(b.pend); j++ {
			if p := &b.pend[j]; p.r == r {
				msgs = append(msgs, udpio.Message{Buf: p.data, Addr: p.peer})
				p.r = nil
			}
		}
		if len(msgs) == 1 {
			b.one, b.oneTgt, b.oneF = append(b.one, msgs[0]), append(b.oneTgt, r.tgt), append(b.oneF, f)
			msgs[0] = udpio.Message{}
			continue
		}
		sent, _ := b.sender.Send(r.tgt, msgs)
		f.count(msgs, sent)
	}
	if len(b.one) > 0 {
		b.sender.SendSpread(b.oneTgt, b.one)
		for k := range b.one {
			b.oneF[k].count(b.one[k:k+1], -1)
		}
		clear(b.one)
		clear(b.oneTgt)
		clear(b.oneF)
		b.one, b.oneTgt, b.oneF = b.one[:0], b.oneTgt[:0], b.oneF[:0]
	}
	if d := b.sender.GSODisabled(); d != b.gsoDisabled {
		b.s.gsoDisabled.Add(d - b.gsoDisabled)
		b.gsoDisabled = d
	}
	clear(b.pend)
	b.pend = b.pend[:0]
}

// count adds the outcome of sending msgs (N of each set by the send) to
// f, and forgets the messages, so that no reference to the frames is
// kept. sent is how many were sent, or -1 to count them from N.
func (f *flow) count(msgs []udpio.Message, sent int) {
	var bytes uint64
	ok := 0
	for k := range msgs {
		if msgs[k].N >= 0 {
			bytes += uint64(msgs[k].N)
			ok++
		}
		msgs[k] = udpio.Message{}
	}
	if sent < 0 {
		sent = ok
	}
	if sent < len(msgs) {
		f.sendErrors.Add(uint64(len(msgs) - sent))
	}
	if sent > 0 {
		f.packets.Add(uint64(sent))
	}
	if bytes > 0 {
		f.bytes.Add(bytes)
	}
}

// allowBandwidth takes n bytes from the allocation's and the user's
// buckets. Without bandwidth quotas it reads no clock.
func (s *Server) allowBandwidth(a *allocation, n int) bool {
	if a.bucket == nil && a.user.bucket == nil {
		return true
	}
	now := s.mono()
	return a.bucket.take(now, n) && a.user.bucket.take(now, n)
}
