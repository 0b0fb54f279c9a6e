package ice

import (
	"errors"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// session is one run of the checks, started by Dial, Accept or Restart.
// After the handoff to the loop, only the loop touches it but result.
type session struct {
	checker  *Checker
	result   chan error // buffered; nil error: connected
	restart  bool       // started by Restart: a pair is already selected
	reported bool       // the result was sent
	// prev is the connected session a restart replaces: until the
	// restart selects a pair it keeps answering the peer's checks with
	// the old credentials and runs consent on the old pair, and it comes
	// back if the restart is given up or fails.
	prev *session
	// answered and bkAnswered count the consent answers of this
	// session's Checker, on the selected pair and on the backup, that
	// the Agent has counted.
	answered, bkAnswered uint64
}

// consentSession is the session that runs consent freshness: the current
// one, or while a restart has not selected a pair, the one it replaces.
func (s *session) consentSession() *session {
	if !s.reported && s.prev != nil {
		return s.prev
	}
	return s
}

// driver is the state of the Agent's loop goroutine, which alone touches
// it: the session running the checks, the checks held for a session that
// has not started, the timer, and the selected pair's liveness.
type driver struct {
	a     *Agent
	cur   *session
	held  []rxPacket // checks for a session that has not started
	timer *time.Timer
	live  liveness
}

// loop owns the Checker and its timer: it hands STUN packets to the
// Checker or to the socket's STUN client, sends what the Checker asks for,
// keeps the selected pair alive and its consent fresh, reports the outcome
// to Dial, Accept or Restart, and records the connection state.
func (a *Agent) loop() {
	d := &driver{a: a, timer: time.NewTimer(time.Hour), live: newLiveness(&a.cfg, jitter)}
	d.timer.Stop()
	defer d.timer.Stop()
	for {
		select {
		case <-a.life.done:
			return
		case s := <-a.ch.start:
			d.start(s)
		case s := <-a.ch.stop:
			d.stop(s)
		case <-a.trickled.kick:
			d.run(time.Now())
		case p := <-a.ch.stunIn:
			d.handleSTUN(p)
			d.run(time.Now())
		case <-d.timer.C:
			// Answers already queued go first: a consent answer that
			// came in time counts even when the loop ran late.
			d.drain()
			d.run(time.Now())
		}
	}
}

// drain handles the STUN packets already queued, without waiting.
func (d *driver) drain() {
	for range queueLen {
		select {
		case p := <-d.a.ch.stunIn:
			d.handleSTUN(p)
		default:
			return
		}
	}
}

// start makes s the current session: a restart replaces the connected
// one, which it keeps as prev; a restart that has not selected a pair yet
// is superseded. The held checks go to s.
func (d *driver) start(s *session) {
	if d.cur != nil && !d.cur.reported {
		d.cur.result <- errors.New("superseded by an ICE restart")
		d.cur = d.cur.prev
	}
	if s.restart {
		s.prev = d.cur
	}
	d.cur = s
	d.a.state.set(ConnectionChecking)
	now := time.Now()
	for _, p := range d.held {
		d.cur.checker.Handle(p.b, p.s.addr, p.from, now)
	}
	d.held = nil
	d.run(now)
}

// stop ends s, given up by its caller: a restart given up leaves the old
// session going on.
func (d *driver) stop(s *session) {
	if d.cur != s {
		return
	}
	d.cur = s.prev
	if d.cur == nil {
		d.timer.Stop()
		return
	}
	d.a.state.set(ConnectionConnected)
	d.run(time.Now())
}

// fail ends the current session with err: ErrFailed when its checks
// failed, ErrConsentLost. A failed restart reports to Restart and gives
// the connection back to the session it replaced; anything else ends the
// connection. The state is set before the result goes out, so that a
// caller that Dial, Accept or Restart returned to sees the state it
// caused.
func (d *driver) fail(err error) {
	cur := d.cur
	rollback := cur.restart && cur.prev != nil && err == ErrFailed
	if rollback {
		d.a.state.set(ConnectionConnected)
	} else {
		d.a.state.set(ConnectionFailed)
	}
	if !cur.reported {
		cur.reported = true
		cur.result <- err
	}
	if rollback {
		d.cur = cur.prev
		return
	}
	if cur.restart || err != ErrFailed {
		d.a.life.lostOnce.Do(func() { close(d.a.life.lost) })
	}
	d.cur = nil
	d.timer.Stop()
}

// run drives the current session at now: the checks, then the liveness
// of the selected pair, then the timer.
func (d *driver) run(now time.Time) {
	if d.cur == nil {
		return
	}
	next := d.check(now)
	if d.cur == nil {
		return
	}
	if sel := d.a.selectedPair(); sel != nil {
		lnext, ok := d.tend(now, sel)
		if !ok {
			return
		}
		next = earliest(next, lnext)
	}
	if !next.IsZero() {
		d.timer.Reset(max(time.Until(next), 0))
	}
}

// check runs the Checkers at now (the current one and, during a restart,
// the one it replaces), sends what they ask for, publishes a new selected
// pair and reports the session's outcome. It returns when to run next.
func (d *driver) check(now time.Time) time.Time {
	a, cur := d.a, d.cur
	a.takeRemotes(cur)
	out, next := cur.checker.Next(now)
	if cur.prev != nil && !cur.reported {
		// the replaced session's answers to the peer's checks
		pout, pnext := cur.prev.checker.Next(now)
		out, next = append(out, pout...), earliest(next, pnext)
	}
	a.publishPeers(cur)
	sel := a.selectedPair()
	for _, o := range out {
		if s := a.socks.forBase(o.From); s != nil {
			s.post(o.Packet, o.To)
			if sel != nil && o.From == sel.Local.BaseAddr() && o.To == sel.Remote.Addr {
				d.live.Sent(now)
			}
		}
	}
	if p, ok := cur.checker.Selected(); ok && (!cur.reported || !samePath(sel, &p)) {
		if sel == nil || !samePath(sel, &p) {
			d.publish(p, now) // the pair's check just succeeded
			if sel != nil {
				a.log.Info("ice: selected pair changed", "pair", p.String())
			}
		}
		if !cur.reported {
			cur.reported = true
			cur.prev = nil
			a.mu.Lock()
			a.sess.connected = true
			a.mu.Unlock()
			a.state.set(ConnectionConnected)
			cur.result <- nil
		}
	}
	if !cur.reported && cur.checker.State() == StateFailed {
		a.log.Warn("ice: every candidate pair failed", "restart", cur.restart)
		d.fail(ErrFailed)
	}
	return next
}

// tend keeps the selected pair sel alive at now: keepalives (RFC 8445,
// Section 11), consent checks (RFC 7675) and the connected or
// disconnected state, as the liveness says. It returns when to run next,
// and false when consent was lost, which ended the session.
func (d *driver) tend(now time.Time, sel *Pair) (time.Time, bool) {
	a := d.a
	cs := d.cur.consentSession()
	if n := cs.checker.consent.answered; n != cs.answered {
		a.counters.consentOK.Add(n - cs.answered)
		cs.answered = n
		d.live.Answered(cs.checker.consent.last)
	}
	if w := a.lastWrite.Load(); w != 0 {
		d.live.Sent(time.Unix(0, w))
	}
	if n := cs.checker.bk.answered; n != cs.bkAnswered {
		a.counters.backupOK.Add(n - cs.bkAnswered)
		cs.bkAnswered = n
	}
	due, next := d.live.Next(now)
	if (due.Stale || due.Lost) && cs == d.cur && cs.reported && cs.checker.failover(now, d.live.Since(), a.cfg.DisconnectedAfter) {
		p, _ := cs.checker.Selected()
		a.log.Info("ice: selected pair disconnected, back to the relayed backup", "from", sel.String(), "to", p.String())
		d.publish(p, now)
		a.counters.failovers.Add(1)
		sel = a.selectedPair()
		due, next = d.live.Next(now)
	}
	if due.Keepalive {
		a.keepalive(sel)
	}
	if due.Lost {
		a.log.Warn("ice: consent lost", "pair", sel.String(), "after", a.cfg.ConsentTimeout)
		d.fail(ErrConsentLost)
		return time.Time{}, false
	}
	if due.Consent && cs.reported {
		if due.Stale {
			a.state.set(ConnectionDisconnected)
		} else {
			a.state.set(ConnectionConnected)
		}
	}
	if due.Check {
		if o, ok := cs.checker.consentCheck(); ok {
			if s := a.socks.forBase(o.From); s != nil && s.post(o.Packet, o.To) {
				a.counters.consents.Add(1)
			}
		}
		if o, ok := cs.checker.backupCheck(now); ok {
			if s := a.socks.forBase(o.From); s != nil && s.post(o.Packet, o.To) {
				a.counters.backups.Add(1)
			}
		}
	}
	return next, true
}

// publish makes p the selected path of the Conn at now, when p's consent
// is fresh: its check has just succeeded, or it is the backup.
func (d *driver) publish(p Pair, now time.Time) {
	d.a.path.Store(&selectedPath{pair: p, s: d.a.socks.forBase(p.Local.BaseAddr())})
	d.live.Select(now)
	d.a.state.selected(p)
}

// handleSTUN gives a STUN packet to the Checker, or when the Checker does
// not want it (a response to no check of its) to the socket's STUN client.
// Checks that arrive before their session starts are held, a few of them:
// before Dial or Accept, and checks that already use the credentials of an
// ICE restart that has not started here yet.
func (d *driver) handleSTUN(p rxPacket) {
	a, cur := d.a, d.cur
	var m stun.Message
	parsed := m.Parse(p.b) == nil
	if cur != nil && parsed && m.Type == stun.BindingRequest && a.forRestart(&m) {
		if len(d.held) < early {
			d.held = append(d.held, p)
		}
		return
	}
	if cur != nil && cur.prev != nil && !cur.reported && parsed {
		// During a restart, the peer's checks with the old credentials
		// (its consent checks, say) are the replaced session's, and so
		// are the answers to its consent checks.
		if m.Type.Class == stun.ClassRequest && localUfrag(&m) == cur.prev.checker.cfg.LocalUfrag ||
			m.Type.Class != stun.ClassRequest && cur.prev.checker.consentPending(m.TransactionID) {
			if err := cur.prev.checker.Handle(p.b, p.s.addr, p.from, p.at); err != nil {
				a.counters.malformed.Add(1)
			}
			return
		}
	}
	if cur != nil {
		err := cur.checker.Handle(p.b, p.s.addr, p.from, p.at)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrDropped) {
			a.counters.malformed.Add(1)
			return
		}
	}
	if p.s.client != nil && p.s.client.HandlePacket(p.b, p.from) {
		return
	}
	if cur == nil && len(d.held) < early && parsed && m.Type == stun.BindingRequest {
		d.held = append(d.held, p)
		return
	}
	if cur != nil || m.Type != stun.BindingIndication {
		a.counters.malformed.Add(1)
	}
}
