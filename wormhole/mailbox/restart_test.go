package mailbox

import (
	"path/filepath"
	"testing"
)

// TestRestartKeepsMailbox: the first side allocates, claims, opens and
// adds its pake; the server restarts on the same database; the second side
// claims the same nameplate, gets the same mailbox and the stored pake,
// and the first side, reconnecting, gets the second side's message.
func TestRestartKeepsMailbox(t *testing.T) {
	db := filepath.Join(t.TempDir(), "rendezvous.db")
	_, addr, url, stop := startStoppable(t, Config{DBPath: db})
	a := bound(t, url, "aaaa")
	a.send(map[string]any{"type": "allocate"})
	np := a.next("allocated")["nameplate"].(string)
	a.send(map[string]any{"type": "claim", "nameplate": np})
	mbox := a.next("claimed")["mailbox"].(string)
	a.send(map[string]any{"type": "open", "mailbox": mbox})
	a.send(map[string]any{"type": "add", "phase": "pake", "body": "a1a1"})
	if m := a.next("message"); m["body"] != "a1a1" {
		t.Fatalf("echo %v", m)
	}
	stop()

	s2, url2 := startServerAt(t, Config{DBPath: db}, addr)
	if st := s2.Stats(); st.Mailboxes != 1 || st.Nameplates != 1 || st.Messages != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	b := bound(t, url2, "bbbb")
	b.send(map[string]any{"type": "claim", "nameplate": np})
	if got := b.next("claimed")["mailbox"]; got != mbox {
		t.Fatalf("claimed %v after restart, want %s", got, mbox)
	}
	b.send(map[string]any{"type": "open", "mailbox": mbox})
	if m := b.next("message"); m["side"] != "aaaa" || m["body"] != "a1a1" || m["phase"] != "pake" {
		t.Fatalf("stored message %v", m)
	}
	b.send(map[string]any{"type": "add", "phase": "pake", "body": "b2b2"})
	b.next("message")

	// The first side reconnects as the real clients do: bind, claim and
	// open again with the same side.
	a2 := bound(t, url2, "aaaa")
	a2.send(map[string]any{"type": "claim", "nameplate": np})
	a2.next("claimed")
	a2.send(map[string]any{"type": "open", "mailbox": mbox})
	for _, want := range []string{"a1a1", "b2b2"} {
		if m := a2.next("message"); m["body"] != want {
			t.Fatalf("reconnected side got %v, want body %s", m, want)
		}
	}
	for _, c := range []*client{a2, b} {
		c.send(map[string]any{"type": "close", "mailbox": mbox, "mood": "happy"})
		c.next("closed")
	}
	if st := s2.Stats(); st.Mailboxes != 0 || st.Rendezvous != 1 {
		t.Errorf("after both closes: %+v", st)
	}
}
