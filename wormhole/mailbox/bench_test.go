package mailbox

import (
	"testing"
)

// BenchmarkRendezvous: one rendezvous per op, as the real clients run it
// (two fresh connections, allocate, claim, open, pake, release, version,
// close), against an in-memory server. bench/rendezvous compares the
// server with the reference one; this finds where the time goes.
func BenchmarkRendezvous(b *testing.B) {
	_, url := startServer(b, Config{ConnsPerIP: 1 << 20, MailboxesPerIP: 1 << 20, Rate: 1e9, Burst: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		a := bound(b, url, "aaaa")
		a.send(map[string]any{"type": "allocate"})
		np := a.next("allocated")["nameplate"]
		a.send(map[string]any{"type": "claim", "nameplate": np})
		mb := a.next("claimed")["mailbox"]
		a.send(map[string]any{"type": "open", "mailbox": mb})
		a.send(map[string]any{"type": "add", "phase": "pake", "body": "0011223344"})
		a.next("message")
		c := bound(b, url, "bbbb")
		c.send(map[string]any{"type": "claim", "nameplate": np})
		c.next("claimed")
		c.send(map[string]any{"type": "open", "mailbox": mb})
		c.next("message")
		c.send(map[string]any{"type": "add", "phase": "pake", "body": "5566778899"})
		c.next("message")
		a.next("message")
		for _, p := range []*client{a, c} {
			p.send(map[string]any{"type": "release", "nameplate": np})
			p.next("released")
			p.send(map[string]any{"type": "close", "mailbox": mb, "mood": "happy"})
			p.next("closed")
			p.ws.CloseNow()
		}
	}
}
