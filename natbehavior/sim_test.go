package natbehavior

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// This file is a simulated world for the Prober: a NAT with a chosen RFC
// 4787 behaviour, an RFC 5780 server, one-way delays and a fake clock. No
// packet leaves the test and nothing sleeps.

var (
	simA1     = netip.MustParseAddrPort("192.0.2.1:3478") // primary
	simA2     = netip.MustParseAddrPort("192.0.2.2:3479") // alternate IP and port
	simLocal  = netip.MustParseAddr("10.0.0.2")
	simPublic = netip.MustParseAddr("198.51.100.7")
	simT0     = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

// natSim is the NAT (or its absence) in front of the prober.
type natSim struct {
	none      bool     // no NAT: the public address is the local one
	mapping   Behavior // with a NAT
	filtering Behavior // with or without a NAT (EIF: nothing filters)
	hairpin   bool
	lifetime  time.Duration // a binding expires after this long without outbound traffic; 0: never
}

// serverSim is the STUN server's behaviour.
type serverSim struct {
	no5780       bool // no OTHER-ADDRESS; 420 to CHANGE-REQUEST
	reject5780   bool // OTHER-ADDRESS, but 420 to CHANGE-REQUEST
	ignoreChange bool // OTHER-ADDRESS, but answers from where it was asked
	noRespPort   bool // 420 to RESPONSE-PORT
	silent       bool // answers nothing
	errorCode    int  // answers every request with this error
	deafAlt      bool // packets to the alternate IP are lost
	delay        time.Duration
	duplicate    bool // sends every response twice, 10 ms apart
}

type binding struct {
	sock      Socket
	key       netip.AddrPort // destination, masked by the mapping behaviour
	public    netip.AddrPort
	contacted map[netip.AddrPort]bool
	lastOut   time.Time
}

type simEvent struct {
	at time.Time
	fn func()
}

type world struct {
	t        testing.TB
	now      time.Time
	nat      natSim
	srv      serverSim
	p        *Prober
	events   []simEvent
	binds    []*binding
	seen     map[Socket]bool
	fwall    map[Socket]map[netip.AddrPort]bool // no NAT: what each socket contacted
	nextPort uint16
	firsts   []time.Time // first transmission of every transaction
	sentIDs  map[stun.TransactionID]bool
	sent     []Datagram
}

func newWorld(t testing.TB, nat natSim, srv serverSim, cfg Config) *world {
	t.Helper()
	if srv.delay == 0 {
		srv.delay = 10 * time.Millisecond
	}
	p, err := NewProber(simA1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, now: simT0, nat: nat, srv: srv, p: p, seen: map[Socket]bool{},
		fwall: map[Socket]map[netip.AddrPort]bool{}, nextPort: 50000, sentIDs: map[stun.TransactionID]bool{}}
}

func localOf(s Socket) netip.AddrPort { return netip.AddrPortFrom(simLocal, 40000+uint16(s)) }

func (w *world) at(d time.Duration, fn func()) {
	e := simEvent{at: w.now.Add(d), fn: fn}
	i, _ := slices.BinarySearchFunc(w.events, e, func(a, b simEvent) int {
		if a.at.After(b.at) {
			return 1
		}
		return -1 // equal times keep insertion order
	})
	w.events = slices.Insert(w.events, i, e)
}

// run drives the prober to the end and returns its report and error.
func (w *world) run() (*Report, error) {
	w.t.Helper()
	for i := 0; !w.p.Done(); i++ {
		if i > 100000 {
			w.t.Fatal("prober makes no progress")
		}
		out, next := w.p.Poll(w.now, nil)
		for _, d := range out {
			w.send(d)
		}
		if w.p.Done() {
			break
		}
		if next.IsZero() && len(w.events) == 0 {
			w.t.Fatal("prober is not done but wants no wake-up")
		}
		if next.Before(w.now) && !next.IsZero() {
			w.t.Fatalf("prober asks to be woken in the past: %v < %v", next, w.now)
		}
		tn := next
		if len(w.events) > 0 && (tn.IsZero() || w.events[0].at.Before(tn)) {
			tn = w.events[0].at
		}
		w.now = tn
		for len(w.events) > 0 && !w.events[0].at.After(w.now) {
			e := w.events[0]
			w.events = w.events[1:]
			e.fn()
		}
	}
	return w.p.Report()
}

// send is a datagram leaving the prober's socket d.Socket.
func (w *world) send(d Datagram) {
	if !w.seen[d.Socket] {
		w.seen[d.Socket] = true
		w.p.SetLocalAddr(d.Socket, localOf(d.Socket))
	}
	var m stun.Message
	if err := m.Parse(d.Packet); err != nil {
		w.t.Fatalf("prober sent a malformed packet: %v", err)
	}
	if !w.sentIDs[m.TransactionID] {
		w.sentIDs[m.TransactionID] = true
		w.firsts = append(w.firsts, w.now)
	}
	w.sent = append(w.sent, Datagram{Socket: d.Socket, To: d.To, Packet: slices.Clone(d.Packet)})
	pkt := slices.Clone(d.Packet)

	// The packet's source as the world sees it.
	var src netip.AddrPort
	if w.nat.none {
		src = localOf(d.Socket)
		if w.fwall[d.Socket] == nil {
			w.fwall[d.Socket] = map[netip.AddrPort]bool{}
		}
		w.fwall[d.Socket][d.To] = true
		if d.To.Addr() == simLocal { // to ourselves
			w.at(0, func() { w.deliverLocal(d.To, src, pkt) })
			return
		}
	} else {
		if d.To.Addr() == simPublic { // hairpinning
			if !w.nat.hairpin {
				return
			}
			b := w.outbound(d.Socket, d.To)
			w.at(time.Millisecond, func() {
				if t := w.find(d.To); t != nil {
					w.p.Receive(t.sock, b.public, pkt, w.now)
				}
			})
			return
		}
		src = w.outbound(d.Socket, d.To).public
	}
	w.at(w.srv.delay, func() { w.serve(src, d.To, pkt) })
}

// outbound finds or makes the NAT binding for a packet from s to dst.
func (w *world) outbound(s Socket, dst netip.AddrPort) *binding {
	key := dst
	switch w.nat.mapping {
	case EndpointIndependent:
		key = netip.AddrPort{}
	case AddressDependent:
		key = netip.AddrPortFrom(dst.Addr(), 0)
	}
	var b *binding
	for _, c := range w.binds {
		if c.sock == s && c.key == key && !w.expired(c) {
			b = c
		}
	}
	if b == nil {
		b = &binding{sock: s, key: key, public: netip.AddrPortFrom(simPublic, w.nextPort), contacted: map[netip.AddrPort]bool{}}
		w.nextPort++
		w.binds = append(w.binds, b)
	}
	b.contacted[dst] = true
	b.lastOut = w.now
	return b
}

func (w *world) expired(b *binding) bool {
	return w.nat.lifetime > 0 && w.now.Sub(b.lastOut) > w.nat.lifetime
}

func (w *world) find(public netip.AddrPort) *binding {
	for _, b := range w.binds {
		if b.public == public && !w.expired(b) {
			return b
		}
	}
	return nil
}

func allowed(f Behavior, contacted map[netip.AddrPort]bool, from netip.AddrPort) bool {
	switch f {
	case AddressDependent:
		for c := range contacted {
			if c.Addr() == from.Addr() {
				return true
			}
		}
		return false
	case AddressAndPortDependent:
		return contacted[from]
	}
	return true
}

// inbound is a packet from the server side arriving at the NAT.
func (w *world) inbound(from, to netip.AddrPort, pkt []byte) {
	if w.nat.none {
		w.deliverLocal(to, from, pkt)
		return
	}
	b := w.find(to)
	if b == nil || !allowed(w.nat.filtering, b.contacted, from) {
		return
	}
	w.p.Receive(b.sock, from, pkt, w.now)
}

func (w *world) deliverLocal(to, from netip.AddrPort, pkt []byte) {
	if to.Addr() != simLocal || to.Port() < 40000 {
		return
	}
	s := Socket(to.Port() - 40000)
	if !w.seen[s] {
		return
	}
	if from.Addr() != simLocal && !allowed(w.nat.filtering, w.fwall[s], from) {
		return
	}
	w.p.Receive(s, from, pkt, w.now)
}

// serve is the RFC 5780 server receiving req from src at its address dst.
func (w *world) serve(src, dst netip.AddrPort, req []byte) {
	if w.srv.silent || (w.srv.deafAlt && dst.Addr() == simA2.Addr()) {
		return
	}
	if dst.Addr() != simA1.Addr() && dst.Addr() != simA2.Addr() {
		return
	}
	var m stun.Message
	if err := m.Parse(req); err != nil || m.Type != stun.BindingRequest {
		return
	}
	var change uint32
	if v, ok := m.Get(stun.AttrChangeRequest); ok {
		change, _ = stun.Uint32(v)
	}
	to := src
	if v, ok := m.Get(stun.AttrResponsePort); ok {
		if w.srv.noRespPort {
			w.reply(dst, src, w.errorResponse(m.TransactionID, stun.CodeUnknownAttribute))
			return
		}
		to = netip.AddrPortFrom(src.Addr(), uint16(v[0])<<8|uint16(v[1]))
	}
	switch {
	case w.srv.errorCode != 0:
		w.reply(dst, to, w.errorResponse(m.TransactionID, w.srv.errorCode))
		return
	case change != 0 && (w.srv.no5780 || w.srv.reject5780):
		w.reply(dst, to, w.errorResponse(m.TransactionID, stun.CodeUnknownAttribute))
		return
	}
	other := func(a netip.AddrPort) (ca netip.Addr, cp uint16) {
		ca, cp = simA2.Addr(), simA2.Port()
		if a.Addr() == simA2.Addr() {
			ca = simA1.Addr()
		}
		if a.Port() == simA2.Port() {
			cp = simA1.Port()
		}
		return ca, cp
	}
	ca, cp := other(dst)
	origin := dst
	if !w.srv.ignoreChange {
		if change&changeIP != 0 {
			origin = netip.AddrPortFrom(ca, origin.Port())
		}
		if change&changePort != 0 {
			origin = netip.AddrPortFrom(origin.Addr(), cp)
		}
	}
	b := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
	b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, src, m.TransactionID)
	b = stun.AppendAddress(b, stun.AttrMappedAddress, src)
	if !w.srv.no5780 {
		b = stun.AppendAddress(b, stun.AttrOtherAddress, netip.AddrPortFrom(ca, cp))
		b = stun.AppendAddress(b, stun.AttrResponseOrigin, origin)
	}
	w.reply(origin, to, b)
}

func (w *world) errorResponse(id stun.TransactionID, code int) []byte {
	b := stun.AppendHeader(nil, stun.BindingError, id)
	return stun.AppendErrorCode(b, code, "")
}

func (w *world) reply(from, to netip.AddrPort, b []byte) {
	w.at(w.srv.delay, func() { w.inbound(from, to, b) })
	if w.srv.duplicate {
		w.at(w.srv.delay+10*time.Millisecond, func() { w.inbound(from, to, b) })
	}
}
