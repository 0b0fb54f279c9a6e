package turnserver

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// FuzzServe drives a fresh Server per input through ServeSTUN and
// ServeOther directly, with no STUN listener: a 401 challenge for
// the nonce, optionally a valid Allocate, then up to three messages whose
// method, credentials and attribute bytes the fuzzer picks, one raw packet
// and one ChannelData frame. It asserts that every answer is a
// well-formed response to its request (ID, method, class, FINGERPRINT,
// ERROR-CODE), that no success is given to a request whose
// MESSAGE-INTEGRITY does not verify under a user's key, that permissions,
// channels and relayed packets only ever reach peers the policy allows,
// and that Close releases every socket, port and goroutine. Run it with
//
//	go test -run='^$' -fuzz='^FuzzServe$' -fuzztime=60s ./turn/turnserver/
//
// Relayed packets go only to 127.77.0.0/16 and [::1]:9 (see fuzzPolicy).
func FuzzServe(f *testing.F) {
	peerA := netip.MustParseAddrPort("127.77.0.1:5000")
	peerA2 := netip.MustParseAddrPort("127.77.0.1:5001")
	peer6 := netip.AddrPortFrom(loop6, 9)
	denied := netip.MustParseAddrPort("127.0.0.1:5000")
	public := netip.MustParseAddrPort("192.0.2.1:5000")
	udp := transport(turn.ProtoUDP)
	chd := func(ch uint16, data string) []byte { return turn.AppendChannelData(nil, ch, []byte(data), false) }
	sendRaw := func(p netip.AddrPort, data string) []byte {
		id := stun.TransactionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
		b := stun.AppendHeader(nil, stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}, id)
		b = stun.AppendXORAddress(b, stun.AttrXORPeerAddress, p, id)
		b = stun.AppendAttr(b, stun.AttrData, []byte(data))
		return stun.AppendFingerprint(b)
	}
	const (
		udpNet = 0 << foNetShift
		tcpNet = 1 << foNetShift
		tlsNet = 2 << foNetShift
		adv301 = 1 << foAdvShift
		adv601 = 2 << foAdvShift
		signed = fzSigned
	)

	// Permission, Send, channel: the relaying paths, over UDP and (with
	// batching and a connection close) TCP.
	relaying := [3][]byte{
		fuzzSpec(fzCreatePermission|signed, 0, 2, peerAttr(peerA)),
		fuzzSpec(fzSend, 0, 3, peerAttr(peerA), dataAttr([]byte("hello"))),
		fuzzSpec(fzChannelBind|signed, 0, 4, channelAttr(0x4000), peerAttr(peerA2)),
	}
	f.Add(byte(foPrealloc|udpNet), relaying[0], relaying[1], relaying[2], sendRaw(peerA, "raw"), chd(0x4000, "hi"))
	f.Add(byte(foPrealloc|tcpNet|foBatch|foConnClosed), relaying[0], relaying[1], relaying[2], sendRaw(peerA, "raw"), chd(0x4000, "hi"))
	// Refresh with LIFETIME 0 deletes the allocation: what follows is
	// 437, or 420 for an unknown comprehension-required attribute.
	f.Add(byte(foPrealloc),
		fuzzSpec(fzRefresh|signed, 0, 2, lifetime(0)),
		fuzzSpec(fzCreatePermission|signed, 0, 3, peerAttr(peerA)),
		fuzzSpec(fzRefresh|signed, 0, 4, raw(0x7777, []byte{1, 2, 3, 4})),
		[]byte("garbage, not STUN at all"), []byte{0x40, 0x00, 0xff, 0xff, 1})
	// EVEN-PORT with R and REQUESTED-ADDRESS-FAMILY, its retransmission,
	// and bob redeeming the RESERVATION-TOKEN on another 5-tuple.
	even := []attrFn{udp, evenPort(true), family(turn.FamilyIPv4)}
	f.Add(byte(0),
		fuzzSpec(fzAllocate|signed, 0, 2, even...),
		fuzzSpec(fzAllocate|signed|fzReuseID, 0, 2, even...),
		fuzzSpec(fzAllocate|signed|fzClientB|fzBob, fzToken, 4, udp),
		[]byte(nil), []byte(nil))
	f.Add(byte(foPrealloc),
		fuzzSpec(fzAllocate|signed|fzClientB|fzBob, 0, 2, udp, token([8]byte{1, 2, 3, 4, 5, 6, 7, 8})),
		[]byte(nil), []byte(nil), []byte(nil), []byte(nil))
	// A dual-stack allocation, an IPv6 permission and Send; permissions
	// expire before the Send.
	f.Add(byte(udpNet|adv301),
		fuzzSpec(fzAllocate|signed, 0, 2, udp, additional(turn.FamilyIPv6), raw(stun.AttrDontFragment, nil)),
		fuzzSpec(fzCreatePermission|signed, 0, 3, peerAttr(peer6), peerAttr(peerA)),
		fuzzSpec(fzSend, 0, 4, peerAttr(peer6), dataAttr([]byte("six"))),
		[]byte(nil), []byte(nil))
	// RFC 6062: a TCP allocation, Connect (refused by the peer, answered
	// later with 447) and a ConnectionBind for an unknown ID.
	f.Add(byte(tcpNet),
		fuzzSpec(fzAllocate|signed, 0, 2, transport(turn.ProtoTCP)),
		fuzzSpec(fzConnect|signed, 0, 3, peerAttr(peerA)),
		fuzzSpec(fzConnectionBind|signed, 0, 4, raw(stun.AttrConnectionID, []byte{0, 0, 0, 1})),
		[]byte(nil), []byte(nil))
	// Authentication: unsigned, wrong password, an unknown method, and a
	// raw Allocate with a forged MESSAGE-INTEGRITY.
	forged := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, stun.TransactionID{9})
	forged = turn.AppendRequestedTransport(forged, turn.ProtoUDP)
	forged = stun.AppendAttrString(forged, stun.AttrUsername, "alice")
	forged = stun.AppendAttrString(forged, stun.AttrRealm, realm)
	forged = stun.AppendAttrString(forged, stun.AttrNonce, "obMatJos2AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	forged = stun.AppendAttr(forged, stun.AttrMessageIntegrity, make([]byte, 20))
	f.Add(byte(foPrealloc),
		fuzzSpec(fzCreatePermission, 0, 2, peerAttr(peerA)),
		fuzzSpec(fzChannelBind|signed, fzWrongPassword, 3, channelAttr(0x4000), peerAttr(peerA)),
		fuzzSpec(fzUnknown|signed, 0, 4, peerAttr(peerA)),
		forged, []byte(nil))
	// Another user on alice's 5-tuple (441), SHA-256 and USERHASH.
	f.Add(byte(foPrealloc|tlsNet),
		fuzzSpec(fzRefresh|signed|fzBob, 0, 2),
		fuzzSpec(fzCreatePermission|signed|fzSHA256, 0, 3, peerAttr(peerA)),
		fuzzSpec(fzChannelBind|signed, fzUserhash, 4, channelAttr(0x4001), peerAttr(peerA)),
		[]byte(nil), chd(0x4001, "via channel"))
	// The nonce goes stale (438, then the harness takes the new one) and
	// the channel expires.
	f.Add(byte(foPrealloc|adv601|foBatch),
		fuzzSpec(fzChannelBind|signed, 0, 2, channelAttr(0x4000), peerAttr(peerA)),
		fuzzSpec(fzRefresh|signed, 0, 3, lifetime(time.Hour)),
		fuzzSpec(fzRefresh|signed, 0, 4, lifetime(time.Hour)),
		[]byte(nil), chd(0x4000, "late"))
	// Peers the policy denies.
	f.Add(byte(foPrealloc),
		fuzzSpec(fzCreatePermission|signed, 0, 2, peerAttr(denied)),
		fuzzSpec(fzChannelBind|signed, 0, 3, channelAttr(0x4000), peerAttr(public)),
		fuzzSpec(fzSend, 0, 4, peerAttr(denied), dataAttr([]byte("no"))),
		sendRaw(public, "no"), []byte(nil))
	f.Add(byte(0), []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil))

	keys := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, opts byte, m1, m2, m3, rawPkt, frame []byte) {
		r := newFuzzRun(t, opts, keys)
		r.run(m1, m2, m3, rawPkt, frame)
	})
}

// Bits of FuzzServe's opts byte.
const (
	foPrealloc   = 1 << 0 // a valid UDP Allocate from client A first
	foNetShift   = 1      // 2 bits: 0 udp, 1 tcp, 2 tls, 3 udp
	foBatch      = 1 << 3 // ChannelData through NewOtherBatch (twice, then Flush)
	foAdvShift   = 4      // 2 bits: advance the clock by 0, 301, 601 or 3601 s after the second message
	foConnClosed = 1 << 6 // stream connections close (ConnClosed) before Close
	foChanB      = 1 << 7 // the ChannelData frame comes from client B
)

// A message spec is two control bytes and the attribute bytes. The first
// control byte holds the method (low 3 bits) and these flags.
const (
	fzAllocate byte = iota
	fzRefresh
	fzCreatePermission
	fzChannelBind
	fzConnect
	fzConnectionBind
	fzSend    // an indication (a request with fzIndication)
	fzUnknown // a method the server does not know

	fzMethodMask = 0x07
	fzSigned     = 1 << 3 // append USERNAME, REALM, NONCE, MESSAGE-INTEGRITY
	fzClientB    = 1 << 4 // from the second client address (connection)
	fzReuseID    = 1 << 5 // the previous message's transaction ID
	fzBob        = 1 << 6 // sign as bob, not alice
	fzSHA256     = 1 << 7 // PASSWORD-ALGORITHM SHA-256, MESSAGE-INTEGRITY-SHA256
)

// Flags of the second control byte.
const (
	fzUserhash      = 1 << 0 // USERHASH instead of USERNAME
	fzNoFingerprint = 1 << 1
	fzWrongPassword = 1 << 2
	fzIndication    = 1 << 3 // flip the class: indication, or a Send request
	fzToken         = 1 << 4 // add the RESERVATION-TOKEN of the last Allocate success
)

// fuzzMaxAttrs bounds the fuzzed attribute bytes of one message.
const fuzzMaxAttrs = 512

var fuzzMethods = [8]stun.Method{
	stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind,
	stun.MethodConnect, stun.MethodConnectionBind, stun.MethodSend, 0x0ff,
}

var (
	fuzzLocal   = netip.MustParseAddrPort("127.0.0.1:3478")
	fuzzClients = [2]netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:40001"),
		netip.MustParseAddrPort("127.0.0.1:40002"),
	}
	// fuzzPeers4 are the IPv4 peers fuzzPolicy allows: loopback, but
	// not 127.0.0.1, where other tests listen.
	fuzzPeers4   = netip.MustParsePrefix("127.77.0.0/16")
	errFuzzDeny  = errors.New("fuzz policy: not a fuzzing peer")
	errNoDetach  = errors.New("fuzz conn: Detach not supported")
	sendIndicate = stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}
)

// fuzzTxID is the transaction ID of the message sent in slot: 0 the
// challenge, 1 the first Allocate, 2-4 the fuzzed messages. Fixed IDs let
// the fuzzer (and the seeds) write XOR-PEER-ADDRESS of IPv6 peers.
func fuzzTxID(slot int) stun.TransactionID {
	var id stun.TransactionID
	copy(id[:], "icebreaker\xf0")
	id[11] = byte(slot)
	return id
}

// fuzzSpec builds a message spec for FuzzServe: the control bytes, then
// the attributes, encoded for the transaction ID of slot.
func fuzzSpec(ctl0, ctl1 byte, slot int, attrs ...attrFn) []byte {
	id := fuzzTxID(slot)
	b := stun.AppendHeader(nil, stun.Type{}, id)
	for _, a := range attrs {
		b = a(b, id)
	}
	return append([]byte{ctl0, ctl1}, b[stun.HeaderSize:]...)
}
