package ice

import (
	"testing"
	"time"
)

// noJitter makes consent intervals exact, for tests.
func noJitter(d time.Duration) time.Duration { return d }

func testLiveness(cfg AgentConfig) liveness {
	return newLiveness(&cfg, noJitter)
}

// at is epoch plus d.
func at(d time.Duration) time.Time { return epoch.Add(d) }

// TestLivenessKeepalive: with consent off, a keepalive goes out Tr after
// the last packet on the selected pair, and anything sent pushes it back.
// RFC 8445, Section 11.
func TestLivenessKeepalive(t *testing.T) {
	s := time.Second
	l := testLiveness(AgentConfig{Keepalive: 15 * s, ConsentInterval: -1})
	l.Select(at(0))
	for _, step := range []struct {
		now       time.Duration
		sent      time.Duration // Sent before Next, if not 0
		keepalive bool
		next      time.Duration
	}{
		{now: 0, next: 15 * s},
		{now: 10 * s, next: 15 * s},
		{now: 15 * s, keepalive: true, next: 30 * s},
		{now: 20 * s, sent: 20 * s, next: 35 * s}, // the application wrote
		{now: 30 * s, next: 35 * s},
		{now: 36 * s, keepalive: true, next: 51 * s}, // a late wakeup
	} {
		if step.sent != 0 {
			l.Sent(at(step.sent))
		}
		due, next := l.Next(at(step.now))
		if due.Keepalive != step.keepalive || due.Consent || !next.Equal(at(step.next)) {
			t.Fatalf("at %v: %+v, next %v; want keepalive %v, next %v", step.now, due, next.Sub(epoch), step.keepalive, step.next)
		}
	}
}

// TestLivenessConsent drives consent on the injected clock with no
// answer: a check every interval, disconnected after DisconnectedAfter,
// lost after ConsentTimeout; an answer makes the pair fresh again and
// postpones the expiry. RFC 7675, Section 5.1.
func TestLivenessConsent(t *testing.T) {
	s := time.Second
	cfg := AgentConfig{Keepalive: -1, ConsentInterval: 5 * s, ConsentTimeout: 30 * s, DisconnectedAfter: 12 * s}
	l := testLiveness(cfg)
	l.Select(at(0))
	type event struct {
		at                 time.Duration
		check, stale, lost bool
	}
	var got []event
	now := at(0)
	for range 100 {
		due, next := l.Next(now)
		if !due.Consent {
			t.Fatalf("at %v: consent does not run", now.Sub(epoch))
		}
		if due.Check || due.Lost || due.Stale {
			got = append(got, event{now.Sub(epoch), due.Check, due.Stale, due.Lost})
		}
		if due.Lost {
			break
		}
		if !next.After(now) {
			t.Fatalf("at %v: next %v makes no progress", now.Sub(epoch), next.Sub(epoch))
		}
		if now.Before(at(12*s)) && next.After(at(12*s)) {
			t.Fatalf("at %v: next %v skips the disconnect time", now.Sub(epoch), next.Sub(epoch))
		}
		now = next
	}
	want := []event{
		{at: 5 * s, check: true}, {at: 10 * s, check: true},
		{at: 12 * s, stale: true}, {at: 15 * s, check: true, stale: true},
		{at: 20 * s, check: true, stale: true}, {at: 25 * s, check: true, stale: true},
		{at: 30 * s, lost: true},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: %+v, want %+v (all: %+v)", i, got[i], want[i], got)
		}
	}

	// An answer refreshes consent: fresh again, and the expiry moves.
	l = testLiveness(cfg)
	l.Select(at(0))
	l.Next(at(14 * s))
	l.Answered(at(14 * s))
	if due, _ := l.Next(at(14 * s)); due.Stale || due.Lost {
		t.Fatalf("after an answer: %+v", due)
	}
	if due, _ := l.Next(at(40 * s)); due.Lost {
		t.Fatalf("lost at 40 s after an answer at 14 s: %+v", due)
	}
	if due, _ := l.Next(at(44 * s)); !due.Lost {
		t.Fatalf("not lost 30 s after the last answer: %+v", due)
	}
	// An answer older than the latest one does not move consent back.
	l = testLiveness(cfg)
	l.Select(at(10 * s))
	l.Answered(at(5 * s))
	if due, _ := l.Next(at(39 * s)); due.Lost {
		t.Fatalf("an old answer moved consent back: %+v", due)
	}
}

// TestLivenessOff: a lite agent runs no consent (the full peer does, RFC
// 7675), and negative intervals turn both timers off.
func TestLivenessOff(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cfg            AgentConfig
		keep, consents bool
	}{
		{"lite", AgentConfig{Lite: true, Keepalive: time.Second, ConsentInterval: time.Second, ConsentTimeout: time.Minute}, true, false},
		{"off", AgentConfig{Keepalive: -1, ConsentInterval: -1}, false, false},
		{"consent only", AgentConfig{Keepalive: -1, ConsentInterval: time.Second, ConsentTimeout: time.Minute, DisconnectedAfter: time.Minute}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testLiveness(tc.cfg)
			l.Select(at(0))
			due, next := l.Next(at(time.Hour))
			if due.Keepalive != tc.keep || due.Consent != tc.consents {
				t.Fatalf("%+v", due)
			}
			if !tc.keep && !tc.consents && !next.IsZero() {
				t.Fatalf("next %v with nothing to do", next)
			}
		})
	}
}
