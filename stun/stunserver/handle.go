package stunserver

import (
	"encoding/binary"
	"net/netip"

	"github.com/icebreaker-net/icebreaker/stun"
)

// transport is the transport a message arrived on.
type transport uint8

const (
	tUDP transport = iota
	tTCP
	tTLS
)

func (t transport) String() string {
	switch t {
	case tTCP:
		return "tcp"
	case tTLS:
		return "tls"
	}
	return "udp"
}

// role names one of the four UDP addresses of RFC 5780, Section 6.1,
// Table 1: bit 0 set means the alternate port, bit 1 the alternate IP.
// CHANGE-REQUEST flips those bits of the receiving socket's role.
type role uint8

const (
	rolePrimary role = 0
	roleAltPort role = 1
	roleAltIP   role = 2
	roleAltBoth role = 3
)

func (r role) String() string {
	switch r {
	case roleAltPort:
		return RoleAltPort
	case roleAltIP:
		return RoleAltIP
	case roleAltBoth:
		return RoleAltBoth
	}
	return RolePrimary
}

// RFC 3489 (Section 11.2) attributes that RFC 5780 renamed: a classic
// client reads SOURCE-ADDRESS and CHANGED-ADDRESS where a current one reads
// RESPONSE-ORIGIN and OTHER-ADDRESS.
const (
	attrSourceAddress  stun.AttrType = 0x0004
	attrChangedAddress stun.AttrType = 0x0005
)

// CHANGE-REQUEST flags. RFC 5780, Section 7.2.
const (
	changeIPFlag   = 0x4
	changePortFlag = 0x2
)

// origin describes where a packet arrived.
type origin struct {
	tr    transport
	role  role           // UDP: the receiving socket's role; otherwise primary
	local netip.AddrPort // the receiving socket's or connection's local address
	conn  Conn           // the receiving socket or connection, for the Handler
}

// reply is what to send for a packet: b (empty for nothing) through a
// socket of role via, to the address to.
type reply struct {
	b   []byte
	via role
	to  netip.AddrPort
}

// responder is what every worker shares. It is immutable after Listen.
type responder struct {
	software string
	rfc5780  bool
	// udpAddrs are the four UDP addresses by role when rfc5780 is set.
	udpAddrs [4]netip.AddrPort
	handler  Handler
	other    OtherHandler     // handler, if it takes messages that are not STUN
	closer   ConnCloseHandler // handler, if it wants connection closes
}

// maxUnknown is how many unknown attributes a worker lists without
// allocating.
const maxUnknown = 16

// worker answers packets for one receive goroutine. It is not safe for
// concurrent use; its counters may be read concurrently.
type worker struct {
	r   *responder
	st  *counters
	msg stun.Message
	unk [maxUnknown]stun.AttrType
	req Request
	// delegated is set once a message went to the Handler.
	delegated bool
	// batch, if set, takes other messages instead of r.other; the
	// receive loop flushes it, and so does handle before a STUN message
	// when batched says that the batch holds some.
	batch   OtherBatch
	batched bool
}

// flush flushes the batch if it holds messages.
func (w *worker) flush() {
	if w.batched {
		w.batched = false
		w.batch.Flush()
	}
}

func newWorker(r *responder, st *counters) *worker {
	return &worker{r: r, st: st}
}

// zeros is the content of PADDING in responses. RFC 5780, Section 7.6:
// the value does not matter.
var zeros [MaxMessageSize]byte

// handle processes one packet that arrived from from, as o describes, and
// appends the response, if any, to out. It allocates nothing when out has
// room for the response (MaxMessageSize plus 2 KiB always suffices). The
// reply refers to out and to nothing else.
//
// RFC 8489, Section 6.3: the basic checks, then the request's class and
// method.
func (w *worker) handle(out, pkt []byte, from netip.AddrPort, o origin) reply {
	m := &w.msg
	// What is not STUN by its first byte (RFC 7983, Section 7) goes to
	// the OtherHandler, if it takes it (a TURN server: ChannelData). A
	// datagram is asked here; a stream frame was asked when it was framed.
	if len(pkt) > 0 && !stun.IsSTUNByte(pkt[0]) && w.r.other != nil {
		if o.tr == tUDP {
			if n, _, err := w.r.other.FrameOther(o.conn, pkt); err != nil || n == 0 {
				w.st.malformed.Add(1)
				return reply{}
			}
		}
		w.st.channelData.Add(1)
		w.delegated = true
		w.req = Request{From: from, Local: o.local, Network: o.tr.String(), Conn: o.conn}
		if w.batch != nil {
			w.batch.ServeOther(&w.req, pkt)
			w.batched = true
		} else {
			w.r.other.ServeOther(&w.req, pkt)
		}
		w.req = Request{}
		return reply{}
	}
	// A client's messages take effect in the order they came: other
	// messages batched from this receive batch go out before a STUN
	// message is handled (a TURN client's ChannelData before its Refresh
	// with LIFETIME 0, which deletes the allocation they go through).
	w.flush()
	// The framing check first: it rejects most garbage without building an
	// error value, so a flood of it costs no allocation.
	if n, err := stun.MessageLength(pkt); err != nil || n != len(pkt) {
		w.st.malformed.Add(1)
		return reply{}
	}
	if err := m.Parse(pkt); err != nil {
		w.st.malformed.Add(1)
		return reply{}
	}
	// RFC 8489, Sections 6.3 and 7: a FINGERPRINT that is present must
	// match, or the message is discarded.
	if m.Has(stun.AttrFingerprint) && m.CheckFingerprint() != nil {
		w.st.malformed.Add(1)
		return reply{}
	}
	switch m.Type.Class {
	case stun.ClassRequest:
	case stun.ClassIndication:
		// RFC 8489, Section 6.3.2: indications get no response. A
		// Binding indication is a keepalive.
		if m.Type.Method != stun.MethodBinding && w.r.handler != nil && !m.Classic {
			return w.delegate(out, from, o)
		}
		w.st.dropped.Add(1)
		return reply{}
	default:
		// Responses are for clients (Section 6.3.3, 6.3.4); a server drops them.
		w.st.dropped.Add(1)
		return reply{}
	}
	if m.Type.Method != stun.MethodBinding {
		w.st.requests.Add(1)
		if w.r.handler != nil && !m.Classic {
			return w.delegate(out, from, o)
		}
		return w.errorReply(out, from, o, stun.CodeBadRequest, "Unsupported method", nil)
	}
	return w.binding(out, from, o)
}

func (w *worker) delegate(out []byte, from netip.AddrPort, o origin) reply {
	w.st.delegated.Add(1)
	w.delegated = true
	w.req = Request{Msg: &w.msg, From: from, Local: o.local, Network: o.tr.String(), Conn: o.conn}
	b := w.r.handler.ServeSTUN(out[:0], &w.req)
	w.req = Request{}
	if len(b) == 0 {
		return reply{}
	}
	return reply{b: b, via: o.role, to: from}
}

// knownBinding reports the comprehension-required attributes a Binding
// request may carry without a 420: those of RFC 8489 (Section 18.3), and
// CHANGE-REQUEST, PADDING and RESPONSE-PORT of RFC 5780 (Section 7). Not
// among them: the TURN and ICE attributes, and RFC 3489's RESPONSE-ADDRESS,
// which would make the server a reflector.
func knownBinding(t stun.AttrType) bool {
	switch t {
	case stun.AttrMappedAddress, stun.AttrUsername, stun.AttrMessageIntegrity,
		stun.AttrErrorCode, stun.AttrUnknownAttributes, stun.AttrRealm,
		stun.AttrNonce, stun.AttrMessageIntegritySHA256, stun.AttrPasswordAlgorithm,
		stun.AttrUserhash, stun.AttrXORMappedAddress,
		stun.AttrChangeRequest, stun.AttrPadding, stun.AttrResponsePort:
		return true
	}
	return false
}

// bindingAttrs are the request attributes that shape a Binding response.
type bindingAttrs struct {
	changeIP, changePort bool
	hasPort              bool
	port                 uint16
	hasPadding           bool
	padding              int
	bad                  string // why the request is a 400, if it is
}

// scan reads the RFC 5780 attributes of the request; only the first of
// each type counts (RFC 8489, Section 14). It returns false for a
// malformed integrity attribute, which makes the message malformed.
func (w *worker) scan(a *bindingAttrs) bool {
	var seenChange bool
	for _, at := range w.msg.Attrs {
		v := at.Value
		switch at.Type {
		case stun.AttrChangeRequest:
			if seenChange {
				continue
			}
			seenChange = true
			if len(v) != 4 {
				a.bad = "Malformed CHANGE-REQUEST"
				continue
			}
			f := binary.BigEndian.Uint32(v)
			a.changeIP, a.changePort = f&changeIPFlag != 0, f&changePortFlag != 0
		case stun.AttrResponsePort:
			if a.hasPort {
				continue
			}
			a.hasPort = true
			if len(v) != 4 {
				a.bad = "Malformed RESPONSE-PORT"
				continue
			}
			a.port = binary.BigEndian.Uint16(v)
			if a.port == 0 {
				a.bad = "RESPONSE-PORT 0"
			}
		case stun.AttrPadding:
			if !a.hasPadding {
				a.hasPadding, a.padding = true, len(v)
			}
		case stun.AttrMessageIntegrity:
			// RFC 8489, Section 14.5: the HMAC-SHA1 is 20 bytes.
			if len(v) != stun.MessageIntegritySize {
				return false
			}
		case stun.AttrMessageIntegritySHA256:
			// RFC 8489, Section 14.6: 16 to 32 bytes in steps of 4.
			if len(v) < 16 || len(v) > stun.MessageIntegritySHA256Size || len(v)%4 != 0 {
				return false
			}
		}
	}
	return true
}

// binding answers a Binding request. RFC 8489, Section 6.3.1; RFC 5780,
// Section 6.1.
func (w *worker) binding(out []byte, from netip.AddrPort, o origin) reply {
	m := &w.msg
	var a bindingAttrs
	if !w.scan(&a) {
		w.st.malformed.Add(1)
		return reply{}
	}
	w.st.requests.Add(1)

	// Step 1: unknown comprehension-required attributes (RFC 8489,
	// Section 6.3.1), and the RFC 5780 ones this server cannot honour
	// here (RFC 5780, Sections 5 and 6: a client must expect 420 then).
	unk := m.UnknownRequired(w.unk[:0], knownBinding)
	reason := ""
	if (a.changeIP || a.changePort) && (!w.r.rfc5780 || o.tr != tUDP) {
		// Deviation: a CHANGE-REQUEST without flags passes even without
		// an alternate address, because RFC 3489 clients always send one.
		unk = appendUnique(unk, stun.AttrChangeRequest)
		reason = "CHANGE-REQUEST needs RFC 5780 over UDP"
	}
	if a.hasPort && o.tr != tUDP {
		unk = appendUnique(unk, stun.AttrResponsePort)
		reason = "RESPONSE-PORT applies only to UDP"
	}
	if len(unk) > 0 {
		if len(unk) > 1 {
			reason = "" // the standard phrase covers a mixed list
		}
		return w.errorReply(out, from, o, stun.CodeUnknownAttribute, reason, unk)
	}

	// Step 2: malformed RFC 5780 attributes and forbidden combinations.
	if a.bad == "" && a.hasPort && a.hasPadding {
		a.bad = "PADDING with RESPONSE-PORT" // RFC 5780, Section 6.1
	}
	if a.bad != "" {
		return w.errorReply(out, from, o, stun.CodeBadRequest, a.bad, nil)
	}

	// Step 3: where the response comes from and goes to (RFC 5780,
	// Section 6.1, Table 1; Section 7.5).
	via := o.role
	if a.changeIP {
		via ^= roleAltIP
	}
	if a.changePort {
		via ^= roleAltPort
	}
	to := from
	if a.hasPort {
		to = netip.AddrPortFrom(from.Addr(), a.port)
	}

	// Step 4: the success response.
	b := out
	respOrigin, other := stun.AttrResponseOrigin, stun.AttrOtherAddress
	if m.Classic {
		// RFC 3489, Section 11.2: echo the 128-bit transaction ID.
		b = stun.AppendClassicHeader(b, stun.BindingSuccess, m.Cookie, m.TransactionID)
		b = stun.AppendAddress(b, stun.AttrMappedAddress, from)
		respOrigin, other = attrSourceAddress, attrChangedAddress
	} else {
		b = stun.AppendHeader(b, stun.BindingSuccess, m.TransactionID)
		b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, m.TransactionID)
		if w.r.rfc5780 {
			// RFC 5780, Section 6.1: both MAPPED-ADDRESS and
			// XOR-MAPPED-ADDRESS.
			b = stun.AppendAddress(b, stun.AttrMappedAddress, from)
		}
	}
	if w.r.rfc5780 {
		src := o.local
		if o.tr == tUDP {
			src = w.r.udpAddrs[via]
		}
		b = stun.AppendAddress(b, respOrigin, src)
		if o.tr == tUDP {
			// OTHER-ADDRESS is Ca:Cp whatever the flags (Table 1). Over
			// TCP there is no listener at the alternate address, and
			// Section 7.4 forbids advertising one.
			b = stun.AppendAddress(b, other, w.r.udpAddrs[o.role^roleAltBoth])
		}
	}
	if a.hasPadding {
		// Deviation: RFC 5780, Section 6.1 suggests the outgoing MTU;
		// echoing the request's size avoids amplification (see the
		// package documentation).
		b = stun.AppendAttr(b, stun.AttrPadding, zeros[:min(a.padding, len(zeros))])
	}
	b = w.finish(b)
	w.st.responses.Add(1)
	return reply{b: b, via: via, to: to}
}

// finish appends SOFTWARE, if configured, and FINGERPRINT, except to
// classic messages: RFC 3489 has no FINGERPRINT. RFC 8489, Sections 14.14
// and 14.7.
func (w *worker) finish(b []byte) []byte {
	if w.r.software != "" {
		start := len(b)
		b = stun.AppendAttrString(b, stun.AttrSoftware, w.r.software)
		if w.msg.Classic {
			padClassicText(b, start)
		}
	}
	if !w.msg.Classic {
		b = stun.AppendFingerprint(b)
	}
	return b
}

// padClassicText turns the zero padding of the text attribute (ERROR-CODE
// or SOFTWARE) at b[start:] into spaces counted in its length, for a
// classic client: RFC 3489, Section 11.2.9 fills text to whole 32-bit words
// with spaces, and RFC 3489 parsers (Vovida's stun) do not skip padding, so
// they misread every attribute after an unpadded one. The padding bytes are
// already in b; nothing moves.
func padClassicText(b []byte, start int) {
	n := int(binary.BigEndian.Uint16(b[start+2 : start+4]))
	padded := (n + 3) &^ 3
	for i := start + stun.AttrHeaderSize + n; i < start+stun.AttrHeaderSize+padded; i++ {
		b[i] = ' '
	}
	binary.BigEndian.PutUint16(b[start+2:start+4], uint16(padded))
}

// errorReply builds an error response to the current request, sent from
// the receiving socket back to the sender. RFC 8489, Section 6.3.1.1.
func (w *worker) errorReply(out []byte, from netip.AddrPort, o origin, code int, reason string, unk []stun.AttrType) reply {
	m := &w.msg
	t := stun.Type{Method: m.Type.Method, Class: stun.ClassError}
	var b []byte
	if m.Classic {
		b = stun.AppendClassicHeader(out, t, m.Cookie, m.TransactionID)
	} else {
		b = stun.AppendHeader(out, t, m.TransactionID)
	}
	start := len(b)
	b = stun.AppendErrorCode(b, code, reason)
	if m.Classic {
		padClassicText(b, start)
	}
	if len(unk) > 0 {
		if m.Classic && len(unk)%2 == 1 {
			// RFC 3489, Section 11.2.10: an odd list repeats one entry
			// so that it fills whole 32-bit words.
			unk = append(unk, unk[0])
		}
		b = stun.AppendUnknownAttributes(b, unk)
	}
	b = w.finish(b)
	w.st.errorResponses.Add(1)
	return reply{b: b, via: o.role, to: from}
}

func appendUnique(list []stun.AttrType, t stun.AttrType) []stun.AttrType {
	for _, x := range list {
		if x == t {
			return list
		}
	}
	return append(list, t)
}
