package natbehavior

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// ErrNotDone is returned by Prober.Report before the run has finished.
var ErrNotDone = errors.New("natbehavior: discovery has not finished")

// Prober runs the RFC 5780 tests against one server without doing any I/O:
// Poll says what to send and when to call again, Receive takes what arrived.
// A driver loop looks like this (Discover is one):
//
//	for !p.Done() {
//		out, next := p.Poll(time.Now(), out[:0])
//		// send each Datagram; wait until next or until a packet arrives,
//		// then p.Receive(socket, from, packet, time.Now())
//	}
//	report, err := p.Report()
//
// Time only moves forward through the now arguments, so tests drive it with
// a fake clock. A Prober is not safe for concurrent use; its zero value is
// not usable (use NewProber).
type Prober struct {
	cfg    Config
	server netip.AddrPort
	local  map[Socket]netip.AddrPort

	probes    []*probe // every probe made, in creation order
	byID      map[stun.TransactionID]*probe
	lastStart time.Time
	anyStart  bool
	msg       stun.Message // reused by Receive

	test1, mapII, mapIII, filtII, filtIII, hairpin *probe
	other                                          netip.AddrPort // usable alternate address

	steps    []time.Duration // lifetime: nominal idle time of each step
	lifeX    []*probe
	lifeY    []*probe
	lifeOut  []uint8         // outcome of each step
	lifeIdle []time.Duration // measured idle time of each step

	afterTest1                                        bool
	mappingDone, filteringDone, hairpinDone, lifeDone bool
	noRFC5780                                         bool

	report  Report
	ignored int
	fatal   error
	done    bool
}

// NewProber returns a Prober for the server at server. It starts nothing:
// the first Poll sends the first request.
func NewProber(server netip.AddrPort, cfg Config) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	server = netx.Unmap(server)
	if !server.IsValid() || server.Port() == 0 || server.Addr().IsUnspecified() {
		return nil, fmt.Errorf("natbehavior: invalid server address %s", server)
	}
	p := &Prober{
		cfg:    cfg.withDefaults(),
		server: server,
		local:  map[Socket]netip.AddrPort{},
		byID:   map[stun.TransactionID]*probe{},
	}
	p.report.Server = server
	p.test1 = p.queue(kindBinding, sockMapping, server, 0, 0, false)
	return p, nil
}

// SetLocalAddr tells the prober the local address of socket s, once the
// driver has opened it. The address of socket 0 decides whether a NAT is
// present (RFC 5780, Section 4.3: "If this address and port are the same as
// the local IP address and port of the socket used to send the request, the
// client knows that it is not NATed"); without it NATPresent is Unknown.
func (p *Prober) SetLocalAddr(s Socket, a netip.AddrPort) {
	p.local[s] = netx.Unmap(a)
}

// Done reports whether every test has finished.
func (p *Prober) Done() bool { return p.done }

// Report returns the result once Done. The error is non-nil when there is
// nothing to report: test I got no answer (a *stunclient.TimeoutError: no
// UDP connectivity with the server), an error response (wrapping a
// *stun.Error), or an unusable one.
func (p *Prober) Report() (*Report, error) {
	if !p.done {
		return nil, ErrNotDone
	}
	if p.fatal != nil {
		return nil, p.fatal
	}
	r := p.report
	r.NotRun = append([]NotRun(nil), p.report.NotRun...)
	if r.BindingLifetime != nil {
		l := *r.BindingLifetime
		r.BindingLifetime = &l
	}
	r.Ignored = p.ignored
	return &r, nil
}

// queue makes a probe with a fresh transaction ID and queues it.
func (p *Prober) queue(k kind, s Socket, to netip.AddrPort, change uint32, responsePort uint16, silent bool) *probe {
	pr := &probe{kind: k, id: stun.NewTransactionID(), sock: s, to: to, silent: silent}
	for p.byID[pr.id] != nil { // 2^-96, but a collision would mix two tests up
		pr.id = stun.NewTransactionID()
	}
	pr.req = buildRequest(pr.id, change, responsePort)
	if k == kindLifeX || k == kindLifeY {
		pr.prio = 1
	}
	p.probes = append(p.probes, pr)
	p.byID[pr.id] = pr
	return pr
}

// Poll sends what is due at now: first transmissions of queued probes (at
// most one per Pace) and retransmissions. It appends the datagrams to out
// and returns them with the time at which Poll wants to run next; that time
// is zero once Done.
func (p *Prober) Poll(now time.Time, out []Datagram) ([]Datagram, time.Time) {
	p.advance(now)
	for _, pr := range p.probes {
		if pr.state != stateRunning || now.Before(pr.next) {
			continue
		}
		if pr.final {
			pr.state, pr.ended = stateDone, pr.next // silence
			continue
		}
		out = p.transmit(pr, now, out)
	}
	p.advance(now)
	for !p.done {
		if p.anyStart && now.Before(p.lastStart.Add(p.cfg.Pace)) {
			break
		}
		pr := p.nextQueued(now)
		if pr == nil {
			break
		}
		pr.state, pr.first = stateRunning, now
		p.lastStart, p.anyStart = now, true
		out = p.transmit(pr, now, out)
	}
	return out, p.wake()
}

// nextQueued returns the queued probe to start now: the lowest priority
// among those whose time has come, the oldest first.
func (p *Prober) nextQueued(now time.Time) *probe {
	var best *probe
	for _, pr := range p.probes {
		if pr.state != stateQueued || now.Before(pr.notBefore) {
			continue
		}
		if best == nil || pr.prio < best.prio {
			best = pr
		}
	}
	return best
}

// wake returns when Poll has something to do next.
func (p *Prober) wake() time.Time {
	if p.done {
		return time.Time{}
	}
	var t time.Time
	earliest := func(c time.Time) {
		if t.IsZero() || c.Before(t) {
			t = c
		}
	}
	for _, pr := range p.probes {
		switch pr.state {
		case stateRunning:
			earliest(pr.next)
		case stateQueued:
			c := pr.notBefore
			if p.anyStart && c.Before(p.lastStart.Add(p.cfg.Pace)) {
				c = p.lastStart.Add(p.cfg.Pace)
			}
			earliest(c)
		}
	}
	return t
}

// Receive takes a packet that arrived on socket s from from at now. b is
// only read during the call. Packets that answer no running probe (late
// or duplicate answers, a response on the wrong socket, strangers,
// malformed packets) are counted in Report.Ignored and otherwise dropped:
// responses are matched to probes by transaction ID only, never by order.
func (p *Prober) Receive(s Socket, from netip.AddrPort, b []byte, now time.Time) {
	from = netx.Unmap(from)
	m := &p.msg
	if err := m.Parse(b); err != nil || m.Classic || m.Type.Method != stun.MethodBinding {
		p.ignored++
		return
	}
	pr := p.byID[m.TransactionID]
	if pr == nil || pr.state != stateRunning || !p.accepts(pr, s, m.Type.Class) {
		p.ignored++
		return
	}
	if m.Has(stun.AttrFingerprint) && m.CheckFingerprint() != nil {
		p.ignored++ // damaged: RFC 8489, Section 14.7; keep waiting
		return
	}
	switch m.Type.Class {
	case stun.ClassRequest: // our own hairpinned request
		pr.answered = true
		pr.resp = response{sock: s, from: from, at: now}
	case stun.ClassError:
		code, reason, err := m.ErrorCode()
		if err != nil {
			p.ignored++
			return
		}
		pr.errResp = &stun.Error{Code: code, Reason: reason}
	case stun.ClassSuccess:
		if unknown := m.UnknownRequired(nil, knownInResponse); len(unknown) > 0 {
			// RFC 8489, Section 6.3.1: discard, and the transaction fails.
			pr.bad = fmt.Errorf("%w: %v", stunclient.ErrUnknownAttribute, unknown)
			break
		}
		mapped, err := m.ReflexiveAddress()
		if err != nil {
			pr.bad = fmt.Errorf("natbehavior: the server's response has no usable mapped address: %w", err)
			break
		}
		r := response{sock: s, from: from, mapped: netx.Unmap(mapped), at: now}
		if o, err := m.Address(stun.AttrOtherAddress); err == nil {
			r.other = netx.Unmap(o)
		}
		pr.answered, pr.resp = true, r
	}
	pr.state, pr.ended = stateDone, now
	p.advance(now)
}

// accepts reports whether a message of class c on socket s can belong to
// pr: a hairpinning probe is answered by its own request arriving on the
// mapping socket; a lifetime check (RFC 5780, Section 4.6) by a response on
// socket X (the binding is alive) or on socket Y (the NAT gave the expired
// binding's port to Y); every other probe by a response on its own socket.
func (p *Prober) accepts(pr *probe, s Socket, c stun.Class) bool {
	switch {
	case pr.kind == kindHairpin:
		return c == stun.ClassRequest && s == sockMapping
	case c != stun.ClassSuccess && c != stun.ClassError:
		return false
	case pr.kind == kindLifeY:
		return s == pr.sock || s == p.lifeX[pr.step].sock
	}
	return s == pr.sock
}

// cancel ends a probe that is no longer needed.
func (p *Prober) cancel(pr *probe, now time.Time) {
	if pr != nil && pr.state != stateDone {
		pr.state, pr.ended, pr.cancelled = stateDone, now, true
	}
}

func (p *Prober) notRun(test, reason string) {
	p.report.NotRun = append(p.report.NotRun, NotRun{Test: test, Reason: reason})
}

func (p *Prober) isDone(pr *probe) bool { return pr != nil && pr.state == stateDone }

// advance applies the RFC 5780 decision procedures to the probes that have
// finished, queues the probes that follow from them, and finishes the run
// when every test is decided.
func (p *Prober) advance(now time.Time) {
	if p.done || !p.isDone(p.test1) {
		return
	}
	if !p.afterTest1 {
		p.afterTest1 = true
		if !p.startTests(now) {
			p.finish(now)
			return
		}
	}
	p.advanceMapping()
	p.advanceFiltering(now)
	p.advanceHairpinning()
	p.advanceLifetime(now)
	if p.mappingDone && p.filteringDone && p.hairpinDone && p.lifeDone {
		p.finish(now)
	}
}

// startTests reads test I and queues the tests that follow. It returns
// false when test I failed: then there is nothing to report.
func (p *Prober) startTests(now time.Time) bool {
	t1 := p.test1
	if !t1.answered {
		// RFC 5780, Section 4.2: no response, no UDP connectivity.
		switch {
		case t1.errResp != nil:
			p.fatal = fmt.Errorf("natbehavior: the server rejected the Binding request: %w", t1.errResp)
		case t1.bad != nil:
			p.fatal = t1.bad
		default:
			p.fatal = &stunclient.TimeoutError{Server: t1.to, Waited: t1.ended.Sub(t1.first), Attempts: t1.sends}
		}
		return false
	}
	r := t1.resp
	p.report.MappedAddress = r.mapped
	p.report.OtherAddress = r.other
	if l := p.local[sockMapping]; l.IsValid() && !l.Addr().IsUnspecified() && l.Port() != 0 {
		p.report.LocalAddress = l
		p.report.NATPresent = tristate(r.mapped != l)
	}

	// RFC 5780, Sections 4.3 and 4.4: without OTHER-ADDRESS the server does
	// not support this usage and neither mapping nor filtering tests run.
	if why := p.checkOther(r.other); why != "" {
		for _, t := range []string{MappingTestII, MappingTestIII, FilteringTestII, FilteringTestIII} {
			p.notRun(t, why)
		}
		p.mappingDone, p.filteringDone = true, true
		if p.report.NATPresent == No {
			p.report.Mapping = EndpointIndependent
		}
	} else {
		p.other = r.other
		if p.report.NATPresent == No {
			// Section 4.3: not NATed, so the mapping is in effect
			// endpoint-independent; tests II and III are not needed.
			p.report.Mapping = EndpointIndependent
			p.mappingDone = true
		} else {
			p.mapII = p.queue(kindMapII, sockMapping, netip.AddrPortFrom(p.other.Addr(), p.server.Port()), 0, 0, false)
		}
		// Section 4.4 from a fresh socket; test I of that section is
		// the request of test II itself (both go to the primary address).
		p.filtII = p.queue(kindFiltII, sockFiltering, p.server, changeIP|changePort, 0, true)
		p.filtIII = p.queue(kindFiltIII, sockFiltering, p.server, changePort, 0, true)
	}

	if p.cfg.NoHairpinning {
		p.hairpinDone = true
	} else {
		// Section 3.4: a request to our own mapped address, from another
		// port; hairpinning works if it arrives on the first socket.
		p.hairpin = p.queue(kindHairpin, sockHairpin, r.mapped, 0, 0, true)
	}

	if !p.cfg.Lifetime {
		p.lifeDone = true
	} else {
		p.steps = lifetimeSteps(p.cfg.LifetimeMax)
		p.lifeY = make([]*probe, len(p.steps))
		p.lifeOut = make([]uint8, len(p.steps))
		p.lifeIdle = make([]time.Duration, len(p.steps))
		for i := range p.steps {
			x := p.queue(kindLifeX, sockLifeX0+Socket(i), p.server, 0, 0, false)
			x.step = i
			p.lifeX = append(p.lifeX, x)
		}
	}
	return true
}

// checkOther returns why the alternate address o cannot serve the tests, or
// "" if it can.
func (p *Prober) checkOther(o netip.AddrPort) string {
	switch {
	case !o.IsValid():
		p.noRFC5780 = true
		return "the server sent no OTHER-ADDRESS, so it does not support RFC 5780 behaviour discovery (that needs a server with two IP addresses)"
	case o.Addr().Is4() != p.server.Addr().Is4():
		return fmt.Sprintf("the server's OTHER-ADDRESS %s is not of the server's address family", o)
	case o.Addr() == p.server.Addr():
		return fmt.Sprintf("the server's OTHER-ADDRESS %s has the server's own IP address", o)
	case o.Port() == p.server.Port():
		return fmt.Sprintf("the server's OTHER-ADDRESS %s has the server's own port, so a change of port cannot be tested", o)
	case o.Addr().IsUnspecified() || o.Port() == 0:
		return fmt.Sprintf("the server's OTHER-ADDRESS %s is not an address", o)
	}
	return ""
}

// advanceMapping runs RFC 5780, Section 4.3, tests II and III.
func (p *Prober) advanceMapping() {
	if p.mappingDone || !p.isDone(p.mapII) {
		return
	}
	if !p.mapII.answered {
		p.notRun(MappingTestII, p.mapII.failure())
		p.mappingDone = true
		return
	}
	m1, m2 := p.test1.resp.mapped, p.mapII.resp.mapped
	if m2 == m1 {
		p.report.Mapping = EndpointIndependent
		p.mappingDone = true
		return
	}
	if p.mapIII == nil {
		p.mapIII = p.queue(kindMapIII, sockMapping, p.other, 0, 0, false)
		return
	}
	if !p.isDone(p.mapIII) {
		return
	}
	p.mappingDone = true
	switch {
	case !p.mapIII.answered:
		p.notRun(MappingTestIII, p.mapIII.failure())
	case p.mapIII.resp.mapped == m2:
		p.report.Mapping = AddressDependent
	default:
		p.report.Mapping = AddressAndPortDependent
	}
}

// advanceFiltering runs RFC 5780, Section 4.4, tests II and III. Both were
// sent together; an answer to test II decides at once, silence waits for
// test III. An answer from another source than the one asked for means the
// server does not honour CHANGE-REQUEST, and decides nothing.
func (p *Prober) advanceFiltering(now time.Time) {
	if p.filteringDone || !p.isDone(p.filtII) {
		return
	}
	ii, iii := p.filtII, p.filtIII
	switch {
	case ii.answered && ii.resp.from == p.other:
		p.report.Filtering = EndpointIndependent
	case ii.answered:
		p.notRun(FilteringTestII, fmt.Sprintf("the response came from %s, not from the alternate address %s: the server does not honour CHANGE-REQUEST", ii.resp.from, p.other))
	case ii.errResp != nil || ii.bad != nil:
		p.notRun(FilteringTestII, ii.failure())
	default:
		if !p.isDone(iii) {
			return
		}
		want := netip.AddrPortFrom(p.server.Addr(), p.other.Port())
		switch {
		case iii.answered && iii.resp.from == want:
			p.report.Filtering = AddressDependent
		case iii.answered:
			p.notRun(FilteringTestIII, fmt.Sprintf("the response came from %s, not from %s: the server does not honour CHANGE-REQUEST", iii.resp.from, want))
		case iii.errResp != nil || iii.bad != nil:
			p.notRun(FilteringTestIII, iii.failure())
		default:
			p.report.Filtering = AddressAndPortDependent
		}
	}
	p.cancel(iii, now)
	p.filteringDone = true
}

// advanceHairpinning reads the hairpinning probe: its request arriving on
// the mapping socket means yes, silence means no.
func (p *Prober) advanceHairpinning() {
	if p.hairpinDone || !p.isDone(p.hairpin) {
		return
	}
	p.report.Hairpinning = tristate(p.hairpin.answered)
	p.hairpinDone = true
}

// advanceLifetime runs RFC 5780, Section 4.6, with one socket X per idle
// time, all opened at the start, so the whole test takes as long as the
// longest idle time instead of the sum of a binary search's. Each X sends
// one request and then stays silent; after its idle time, socket Y sends a
// request with RESPONSE-PORT set to X's mapped port. The answer arriving on
// X means the binding was alive; on Y, or not at all, that it had expired.
// The first expiry cancels the longer idle times.
func (p *Prober) advanceLifetime(now time.Time) {
	if p.lifeDone {
		return
	}
	pending := false
	for i, x := range p.lifeX {
		if p.lifeOut[i] != stepPending {
			continue
		}
		if !p.isDone(x) {
			pending = true
			continue
		}
		if !x.answered {
			p.lifeOut[i] = stepFailed // this step cannot run; the others may
			continue
		}
		y := p.lifeY[i]
		if y == nil {
			y = p.queue(kindLifeY, sockLifeY, p.server, 0, x.resp.mapped.Port(), true)
			y.step = i
			y.notBefore = x.resp.at.Add(p.steps[i])
			p.lifeY[i] = y
		}
		if !p.isDone(y) {
			pending = true
			continue
		}
		p.lifeIdle[i] = y.first.Sub(x.resp.at)
		switch {
		case y.errResp != nil || y.bad != nil:
			// Typically 420: the server does not support RESPONSE-PORT
			// (optional, RFC 5780, Section 5).
			p.lifeOut[i] = stepFailed
			p.notRun(LifetimeTest, y.failure())
			p.lifeDone = true
			p.stopLifetime(now, -1)
			return
		case y.answered && y.resp.sock == x.sock:
			p.lifeOut[i] = stepAlive
		default:
			p.lifeOut[i] = stepExpired
			p.stopLifetime(now, i)
		}
	}
	if pending {
		return
	}
	p.lifeDone = true
	var l Lifetime
	ran := false
	for i, o := range p.lifeOut {
		if o == stepExpired && (l.Expired == 0 || p.lifeIdle[i] < l.Expired) {
			l.Expired, ran = p.lifeIdle[i], true
		}
	}
	for i, o := range p.lifeOut {
		// An alive step longer than an expired one contradicts it (the
		// NAT is not consistent); keep the shorter, safer answer.
		if o == stepAlive && p.lifeIdle[i] > l.Alive && (l.Expired == 0 || p.lifeIdle[i] < l.Expired) {
			l.Alive, ran = p.lifeIdle[i], true
		}
	}
	if !ran {
		reason := "no step of the test got an answer"
		if len(p.lifeX) > 0 && !p.lifeX[0].answered {
			reason = p.lifeX[0].failure()
		}
		p.notRun(LifetimeTest, reason)
		return
	}
	l.Max = p.cfg.LifetimeMax
	p.report.BindingLifetime = &l
}

// Outcomes of a lifetime step.
const (
	stepPending uint8 = iota
	stepFailed
	stepAlive
	stepExpired
	stepCancelled
)

// stopLifetime cancels the pending lifetime steps after step i (every step
// if i is negative): once a binding expired after an idle time, longer idle
// times tell nothing new.
func (p *Prober) stopLifetime(now time.Time, i int) {
	for j := i + 1; j < len(p.lifeX); j++ {
		if p.lifeOut[j] != stepPending {
			continue
		}
		p.lifeOut[j] = stepCancelled
		p.cancel(p.lifeX[j], now)
		p.cancel(p.lifeY[j], now)
	}
}

// finish ends the run: cancels what still runs and writes the report's
// conclusions.
func (p *Prober) finish(now time.Time) {
	for _, pr := range p.probes {
		if pr.state != stateDone {
			p.cancel(pr, now)
		}
	}
	p.done = true
	if p.fatal != nil {
		return
	}
	r := &p.report
	r.OldName = oldName(r.NATPresent, r.Mapping, r.Filtering)
	r.Verdict = verdict(r, p.noRFC5780)
}
