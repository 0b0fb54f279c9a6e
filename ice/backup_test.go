package ice

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// directWithBackup connects relayAgents on the direct pair and runs them
// until both keep the relayed pair as a backup.
func directWithBackup(t *testing.T) (*Checker, *Checker, *harness) {
	t.Helper()
	a, b, h := relayAgents(t)
	backups := func() bool {
		return h.connected() && a.backupPair() != nil && b.backupPair() != nil
	}
	if !h.run(3*time.Second, backups) {
		t.Fatalf("no backup: A %v backup %v, B %v backup %v", a.State(), a.backupPair(), b.State(), b.backupPair())
	}
	for i, c := range h.agents {
		p, _ := c.Selected()
		if isRelayed(&p) {
			t.Fatalf("agent %d selected %v, want the direct pair", i, p.String())
		}
		if bk := c.backupPair(); !isRelayed(bk) {
			t.Fatalf("agent %d keeps %v as backup, want a relayed pair", i, bk.String())
		}
	}
	return a, b, h
}

// backupRound sends a consent check on each agent's backup at h.now and
// delivers the answers.
func backupRound(t *testing.T, h *harness) {
	t.Helper()
	for i, c := range h.agents {
		o, ok := c.backupCheck(h.now)
		if !ok {
			t.Fatalf("agent %d: no backup consent check", i)
		}
		bk := c.backupPair()
		if o.From != bk.Local.BaseAddr() || o.To != bk.Remote.Addr {
			t.Fatalf("agent %d: backup check %v -> %v, want on %v", i, o.From, o.To, bk.String())
		}
		h.emit(i, []Outgoing{o})
	}
	h.settle()
}

// TestCheckerBackup drives the backup relayed pair on the injected clock:
// kept while the direct pair is selected, consent checks on it answered,
// the switch to it when the direct pair goes stale, none when the backup
// is stale too, and the move back to the direct pair when it answers
// again.
func TestCheckerBackup(t *testing.T) {
	const fresh = 2 * time.Second
	t.Run("kept and checked", func(t *testing.T) {
		_, _, h := directWithBackup(t)
		for round := range 3 {
			h.now = h.now.Add(time.Second)
			backupRound(t, h)
			for i, c := range h.agents {
				if c.bk.answered != uint64(round+1) || !c.bk.last.Equal(h.now) || len(c.bk.txs) != 0 {
					t.Fatalf("round %d agent %d: backup %+v, want answered at %v", round, i, c.bk, h.now.Sub(epoch))
				}
			}
		}
		var onRelay int
		for _, s := range h.log {
			if s.msg == stun.BindingRequest && (s.from == ap("198.51.100.9:7000") || s.to == ap("198.51.100.9:7000")) {
				onRelay++
			}
		}
		if onRelay < 6 {
			t.Fatalf("%d checks on the relayed pair, want its check and 3 rounds of 2 consent checks", onRelay)
		}
	})
	t.Run("switch on direct stale", func(t *testing.T) {
		_, _, h := directWithBackup(t)
		h.drop = isHostPath // the direct path is cut
		since := h.now      // the direct pair's latest answer
		h.now = h.now.Add(time.Second)
		backupRound(t, h)
		for i, c := range h.agents {
			bk := c.backupPair()
			if !c.failover(h.now.Add(fresh-time.Millisecond), since, fresh) {
				t.Fatalf("agent %d: no failover with a fresh backup", i)
			}
			if p, _ := c.Selected(); !samePath(&p, bk) || c.backupPair() != nil {
				t.Fatalf("agent %d selected %v after the failover, want %v", i, p.String(), bk.String())
			}
			o, ok := c.consentCheck()
			if !ok || o.From != bk.Local.BaseAddr() || o.To != bk.Remote.Addr {
				t.Fatalf("agent %d: consent goes %v -> %v, want on %v", i, o.From, o.To, bk.String())
			}
		}
		// The controlling agent tries the direct pair again; cut, it stays
		// on the relay, and both keep the connection.
		h.run(h.now.Sub(epoch)+60*time.Second, func() bool { return false })
		for i, c := range h.agents {
			if p, _ := c.Selected(); !isRelayed(&p) || c.State() != StateConnected {
				t.Fatalf("agent %d: %v on %v, want connected on the relayed pair", i, c.State(), p.String())
			}
		}
	})
	t.Run("no switch with a stale backup", func(t *testing.T) {
		a, _, h := directWithBackup(t)
		since := h.now
		h.now = h.now.Add(time.Second)
		backupRound(t, h)
		sel, _ := a.Selected()
		if a.failover(h.now.Add(fresh), since, fresh) {
			t.Fatal("failover to a backup unanswered for the freshness time")
		}
		// Both paths cut at once: the backup's latest answered check
		// went out before the selected pair's latest answer.
		if a.failover(h.now.Add(time.Millisecond), h.now, fresh) {
			t.Fatal("failover to a backup not answered since the selected pair stopped")
		}
		if p, _ := a.Selected(); !samePath(&p, &sel) || a.backupPair() == nil {
			t.Fatalf("selected %v, want %v kept, with its backup", p.String(), sel.String())
		}
	})
	t.Run("back to direct", func(t *testing.T) {
		a, b, h := directWithBackup(t)
		h.now = h.now.Add(time.Second)
		backupRound(t, h)
		for _, c := range h.agents {
			if !c.failover(h.now, epoch, fresh) {
				t.Fatal("no failover")
			}
		}
		// The direct path works again: the controlling agent nominates
		// it, and both move back, the relayed pair their backup again.
		direct := func() bool {
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			return !isRelayed(&pa) && !isRelayed(&pb) && a.backupPair() != nil && b.backupPair() != nil
		}
		if !h.run(h.now.Sub(epoch)+5*time.Second, direct) {
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			t.Fatalf("no move back to the direct pair: A %v, B %v", pa.String(), pb.String())
		}
	})
	t.Run("no backup without relay", func(t *testing.T) {
		ca, cb := pairCfg(true)
		la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
		a := mustChecker(t, []Candidate{la}, remote(lb), ca)
		b := mustChecker(t, []Candidate{lb}, remote(la), cb)
		h := newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
		if !h.run(3*time.Second, h.connected) {
			t.Fatal("not connected")
		}
		if _, ok := a.backupCheck(h.now); ok || a.failover(h.now, epoch, fresh) {
			t.Fatal("a backup without a relayed pair")
		}
	})
}

// waitStats polls an Agent's counters, bounded, until ok says so.
func waitStats(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // bounded poll of a counter
	}
}

// TestAgentFailoverToRelay connects an agent with a host and a relayed
// candidate (an in-process TURN server) to one with a host candidate:
// they select the direct pair and keep the relayed one as a backup, with
// consent checks on it. The direct path is then cut mid-stream: both move
// to the relayed pair, report it, stay connected, and the Conns go on
// carrying data both ways; when the direct path heals, both move back to
// it. When the relayed path is cut too, there is no
// fresh backup: consent is lost as without one (ErrConsentLost).
func TestAgentFailoverToRelay(t *testing.T) {
	udp, _, _, _ := turnServer(t)
	for _, tc := range []struct {
		name     string
		cutRelay bool
	}{{"direct cut", false}, {"both cut", true}} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			gA := loopbackOnly()
			gA.TURNServers = []TURNServer{{Addr: udp, Username: "u", Password: "p"}}
			paths := make(chan Pair, 16)
			cfg := func(g GatherConfig) AgentConfig {
				return AgentConfig{Gather: g, ConsentInterval: 20 * time.Millisecond,
					DisconnectedAfter: 100 * time.Millisecond, ConsentTimeout: 3 * time.Second}
			}
			cfgA := cfg(gA)
			cfgA.OnSelectedPairChange = func(p Pair) {
				select {
				case paths <- p:
				default:
				}
			}
			a, b, ca, cb := connectPair(t, cfgA, cfg(loopbackOnly()))
			direct, _ := a.SelectedPair()
			if isRelayed(&direct) {
				t.Fatalf("A selected %v, want the direct pair", direct.String())
			}
			nextPath := func() Pair {
				t.Helper()
				select {
				case p := <-paths:
					return p
				case <-time.After(5 * time.Second):
					t.Fatal("no OnSelectedPairChange")
					return Pair{}
				}
			}
			if p := nextPath(); !samePath(&p, &direct) {
				t.Fatalf("OnSelectedPairChange %v first, want %v", p.String(), direct.String())
			}
			buf := make([]byte, 1500)
			exchange := func(phase string) {
				t.Helper()
				for i, dir := range []struct{ from, to net.Conn }{{ca, cb}, {cb, ca}, {ca, cb}, {cb, ca}} {
					msg := []byte(phase + string(rune('0'+i)))
					if _, err := dir.from.Write(msg); err != nil {
						t.Fatalf("%s: Write: %v", phase, err)
					}
					dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := dir.to.Read(buf)
					if err != nil || !bytes.Equal(buf[:n], msg) {
						t.Fatalf("%s: read %q, %v; want %q", phase, buf[:n], err, msg)
					}
				}
			}
			exchange("direct")
			waitStats(t, "backup consent answers", func() bool {
				return a.Stats().BackupResponses > 0 && b.Stats().BackupResponses > 0
			})

			// Cut the direct path: each side drops what its host socket
			// gets from the other's host candidate; the relayed path (A's
			// relay to B's host) stays, unless cut too.
			hostA, hostB := direct.Local.Addr, direct.Remote.Addr
			dropA := func(relayed bool, from netip.AddrPort) bool { return tc.cutRelay || !relayed && from == hostB }
			dropB := func(_ bool, from netip.AddrPort) bool { return tc.cutRelay || from == hostA }
			a.dropRx.Store(&dropA)
			b.dropRx.Store(&dropB)
			if tc.cutRelay {
				ca.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := ca.Read(buf); !errors.Is(err, ErrConsentLost) {
					t.Fatalf("Read with both paths cut: %v, want ErrConsentLost", err)
				}
				// (Whether a failover came first depends on where the cut
				// fell between the two paths' answers of one round; the
				// injected-clock TestCheckerBackup pins the rule.)
			} else {
				waitStats(t, "the failovers", func() bool {
					return a.Stats().Failovers > 0 && b.Stats().Failovers > 0
				})
				for i, ag := range []*Agent{a, b} {
					p, _ := ag.SelectedPair()
					if !isRelayed(&p) {
						t.Fatalf("agent %d on %v after the cut, want the relayed pair", i, p.String())
					}
					if st := ag.State(); st != ConnectionConnected {
						t.Fatalf("agent %d %v after the failover", i, st)
					}
				}
				exchange("relay")
				if p := nextPath(); !isRelayed(&p) {
					t.Fatalf("OnSelectedPairChange %v after the cut, want the relayed pair", p.String())
				}
				// (Malformed may count one datagram that was in flight on a
				// path during the switch; seen once in CI-like runs.)
				if st := a.Stats(); st.BackupChecks < st.BackupResponses {
					t.Fatalf("stats A %+v: more backup answers than checks", st)
				} else {
					t.Logf("stats A %+v", st)
				}
				// The direct path heals: the controlling agent's
				// nomination of the direct pair, retransmitted, gets
				// through, and both move back to it.
				a.dropRx.Store(nil)
				b.dropRx.Store(nil)
				waitStats(t, "the move back to the direct pair", func() bool {
					pa, _ := a.SelectedPair()
					pb, _ := b.SelectedPair()
					return !isRelayed(&pa) && !isRelayed(&pb)
				})
				exchange("back")
				if p := nextPath(); !samePath(&p, &direct) {
					t.Fatalf("OnSelectedPairChange %v after the heal, want %v", p.String(), direct.String())
				}
			}
			a.Close()
			b.Close()
			checkGoroutines(t, base)
		})
	}
}

// TestAgentRelayFirstThenDirect connects the same two agents with the
// direct path cut at first: after the relay wait they select the relayed
// pair; once the direct path works again the checks' retransmissions
// succeed and both move to the direct pair, keeping the relayed one as
// their backup. A ping-pong on the Conns runs
// throughout, every message answered in order: the move loses nothing and
// resets nothing.
func TestAgentRelayFirstThenDirect(t *testing.T) {
	udp, _, _, _ := turnServer(t)
	base := runtime.NumGoroutine()
	gA := loopbackOnly()
	gA.TURNServers = []TURNServer{{Addr: udp, Username: "u", Password: "p"}}
	cfg := func(g GatherConfig) AgentConfig {
		return AgentConfig{Gather: g, ConsentInterval: 50 * time.Millisecond}
	}
	// The direct path is cut: host to host packets are dropped on receipt.
	cut := func(a, b *Agent, candsA, candsB []Candidate) {
		var hostA netip.AddrPort
		for _, c := range candsA {
			if c.Type == TypeHost {
				hostA = c.Addr
			}
		}
		hostB := candsB[0].Addr
		dropA := func(relayed bool, from netip.AddrPort) bool { return !relayed && from == hostB }
		dropB := func(_ bool, from netip.AddrPort) bool { return from == hostA }
		a.dropRx.Store(&dropA)
		b.dropRx.Store(&dropB)
	}
	a, b, ca, cb := connectPairBefore(t, cfg(gA), cfg(loopbackOnly()), nil, nil, cut)
	if p, _ := a.SelectedPair(); !isRelayed(&p) {
		t.Fatalf("A selected %v with the direct path cut, want the relayed pair", p.String())
	}
	a.dropRx.Store(nil)
	b.dropRx.Store(nil)

	buf := make([]byte, 64)
	direct := func() bool {
		pa, _ := a.SelectedPair()
		pb, _ := b.SelectedPair()
		return !isRelayed(&pa) && !isRelayed(&pb)
	}
	deadline := time.Now().Add(20 * time.Second)
	after := 0 // messages exchanged once both are direct
	for i := 0; after < 10; i++ {
		if time.Now().After(deadline) {
			pa, _ := a.SelectedPair()
			pb, _ := b.SelectedPair()
			t.Fatalf("after %d messages: A on %v, B on %v; want both direct", i, pa.String(), pb.String())
		}
		msg := fmt.Appendf(nil, "m%d", i)
		for _, dir := range []struct{ from, to net.Conn }{{ca, cb}, {cb, ca}} {
			if _, err := dir.from.Write(msg); err != nil {
				t.Fatalf("message %d: Write: %v", i, err)
			}
			dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := dir.to.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("message %d: read %q, %v", i, buf[:n], err)
			}
		}
		if direct() {
			after++
		} else {
			time.Sleep(5 * time.Millisecond) // paces the ping-pong, bounded by the deadline
		}
	}
	// The relayed pair, selected before, is now the backup.
	waitStats(t, "backup consent answers after the upgrade", func() bool {
		return a.Stats().BackupResponses > 0 && b.Stats().BackupResponses > 0
	})
	a.Close()
	b.Close()
	checkGoroutines(t, base)
}
