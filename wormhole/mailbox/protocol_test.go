package mailbox

import (
	"strings"
	"testing"
	"time"
)

// The protocol as the reference server answers it, with raw clients.

func TestNameplates(t *testing.T) {
	s, url := startServer(t, Config{})
	a := bound(t, url, "a")
	a.send(map[string]any{"type": "allocate"})
	if np := a.next("allocated")["nameplate"]; np != "1" {
		t.Fatalf("first nameplate %v, want 1", np)
	}
	b := bound(t, url, "b")
	b.send(map[string]any{"type": "allocate"})
	if np := b.next("allocated")["nameplate"]; np != "2" {
		t.Fatalf("second nameplate %v, want 2", np)
	}
	a.send(map[string]any{"type": "list"})
	if got := a.next("nameplates")["nameplates"].([]any); len(got) != 2 {
		t.Fatalf("list %v", got)
	}
	// Allocate claims: releasing frees the number for reuse.
	a.send(map[string]any{"type": "release", "nameplate": "1"})
	a.next("released")
	c := bound(t, url, "c")
	c.send(map[string]any{"type": "allocate"})
	if np := c.next("allocated")["nameplate"]; np != "1" {
		t.Fatalf("after release: nameplate %v, want 1 again", np)
	}
	// Errors the reference server gives, word for word.
	c.send(map[string]any{"type": "allocate"})
	if e := c.next("error"); e["error"] != "you already allocated one, don't be greedy" || e["orig"] == nil {
		t.Errorf("second allocate: %v", e)
	}
	d := bound(t, url, "a")
	d.send(map[string]any{"type": "claim", "nameplate": "1"})
	d.next("claimed")
	d.send(map[string]any{"type": "claim", "nameplate": "1"})
	if e := d.next("error"); e["error"] != "only one claim per connection" {
		t.Errorf("second claim: %v", e)
	}
	e := bound(t, url, "e")
	e.send(map[string]any{"type": "claim", "nameplate": "1"})
	if got := e.next("error"); got["error"] != "crowded" {
		t.Errorf("third side: %v", got)
	}
	if st := s.Stats(); st.Crowded != 1 || st.Nameplates != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestMailboxDelivery(t *testing.T) {
	s, url := startServer(t, Config{})
	a := bound(t, url, "a")
	a.send(map[string]any{"type": "claim", "nameplate": "42"})
	mb := a.next("claimed")["mailbox"].(string)
	a.send(map[string]any{"type": "add", "phase": "pake", "body": "00"})
	if e := a.next("error"); e["error"] != "must open mailbox before adding" {
		t.Fatalf("add before open: %v", e)
	}
	a.send(map[string]any{"type": "open", "mailbox": mb})
	a.send(map[string]any{"type": "add", "phase": "pake", "body": "aa", "id": "m1"})
	if m := a.next("message"); m["side"] != "a" || m["body"] != "aa" || m["id"] != "m1" {
		t.Fatalf("echo %v", m)
	}
	b := bound(t, url, "b")
	b.send(map[string]any{"type": "claim", "nameplate": "42"})
	if got := b.next("claimed")["mailbox"]; got != mb {
		t.Fatalf("b got mailbox %v, want %s", got, mb)
	}
	b.send(map[string]any{"type": "open", "mailbox": mb})
	if m := b.next("message"); m["body"] != "aa" {
		t.Fatalf("stored message %v", m)
	}
	b.send(map[string]any{"type": "add", "phase": "pake", "body": "bb"})
	for _, c := range []*client{a, b} {
		if m := c.next("message"); m["side"] != "b" || m["body"] != "bb" {
			t.Fatalf("echo to every side: %v", m)
		}
	}
	a.send(map[string]any{"type": "close", "mood": "happy"})
	a.next("closed")
	if st := s.Stats(); st.Mailboxes != 1 {
		t.Fatalf("one side closed: %+v", st)
	}
	b.send(map[string]any{"type": "close", "mailbox": mb, "mood": "scary"})
	b.next("closed")
	if st := s.Stats(); st.Mailboxes != 0 || st.Nameplates != 0 || st.Messages != 0 || st.Scary != 1 || st.Happy != 1 || st.Rendezvous != 1 {
		t.Errorf("both closed: %+v", st)
	}
}

func TestPrune(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, url := startServer(t, Config{Now: clock, PruneAfter: time.Minute})
	a := bound(t, url, "a")
	a.send(map[string]any{"type": "allocate"})
	a.next("allocated")
	b := bound(t, url, "b")
	b.send(map[string]any{"type": "claim", "nameplate": "77"})
	mb := b.next("claimed")["mailbox"].(string)
	b.send(map[string]any{"type": "open", "mailbox": mb})
	b.send(map[string]any{"type": "ping", "ping": 1})
	b.next("pong")
	now = now.Add(2 * time.Minute)
	if n := s.Prune(); n != 1 { // nameplate 1's mailbox (with it), not b's: b listens
		t.Errorf("pruned %d, want the abandoned mailbox", n)
	}
	if st := s.Stats(); st.Mailboxes != 1 || st.Nameplates != 1 {
		t.Errorf("after prune: %+v", st)
	}
	b.ws.CloseNow()
	waitFor(t, "b's listener to go", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return !s.hasListenersLocked() })
	now = now.Add(2 * time.Minute)
	s.Prune()
	if st := s.Stats(); st.Mailboxes != 0 || st.Nameplates != 0 {
		t.Errorf("after b left: %+v", st)
	}
}

func TestMOTDAndDisabled(t *testing.T) {
	_, url := startServer(t, Config{Disabled: "this server is closed for maintenance"})
	c := dialRaw(t, url)
	w, err := c.read()
	if err != nil || !strings.Contains(w["welcome"].(map[string]any)["error"].(string), "maintenance") {
		t.Fatalf("welcome %v, %v", w, err)
	}
	if _, err := c.read(); err == nil {
		t.Error("a disabled server kept the connection open")
	}
}
