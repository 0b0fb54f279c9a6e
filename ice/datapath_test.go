package ice

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// quiet is an AgentConfig without keepalives and consent checks, so that
// once connected the Agents send nothing of their own: the data path is
// all that runs.
func quiet(g GatherConfig) AgentConfig {
	return AgentConfig{Gather: g, Keepalive: -1, ConsentInterval: -1}
}

// asSrflx signals host candidates as server-reflexive ones at the same
// address: what a peer behind an endpoint-independent NAT that keeps the
// port looks like, so that the selected pair is a srflx one.
func asSrflx(cs []Candidate) []Candidate {
	out := make([]Candidate, len(cs))
	for i, c := range cs {
		c.Type, c.Related = TypeServerReflexive, c.Addr
		c.Foundation = Foundation(TypeServerReflexive, c.Addr.Addr(), c.Addr.Addr(), c.Transport)
		c.Priority = Priority(TypeServerReflexive.Preference(), MaxLocalPreference, 1)
		out[i] = c
	}
	return out
}

// dataPath connects two quiet agents over one data path and returns their
// Conns: "host" is host to host; "srflx" is each side signalled to the
// other as server-reflexive; "relay" is A's relayed candidate (a UDP
// allocation on the in-process TURN server) to B's host.
func dataPath(tb testing.TB, name string) (a, b *Conn) {
	tb.Helper()
	gA := loopbackOnly()
	var toA, toB func([]Candidate) []Candidate
	switch name {
	case "relay":
		udp, _, _, _ := turnServer(tb)
		gA.RelayOnly = true
		gA.TURNServers = []TURNServer{{Addr: udp, Transport: turnclient.UDP, Username: "u", Password: "p"}}
	case "srflx":
		toA, toB = asSrflx, asSrflx
	}
	_, _, ca, cb := connectPairSignal(tb, quiet(gA), quiet(loopbackOnly()), toA, toB)
	a, b = ca.(*Conn), cb.(*Conn)
	want := map[string]CandidateType{"host": TypeHost, "srflx": TypeServerReflexive, "relay": TypeRelay}[name]
	p, _ := a.a.SelectedPair()
	if name == "relay" && p.Local.Type != want || name != "relay" && p.Remote.Type != want {
		tb.Fatalf("%s: selected %v", name, &p)
	}
	return a, b
}

// warm sends round trips until the path is in its steady state: on a
// relay, until the channel is bound (RFC 8656, Section 12).
func warm(tb testing.TB, a, b *Conn, msg, buf []byte) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		roundTrip(tb, a, b, msg, buf)
		sp := a.a.path.Load()
		if sp.s.relay == nil || sp.s.relay.Channel(sp.pair.Remote.Addr) != 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("the relay bound no channel")
		}
	}
}

// roundTrip sends msg from a to b and back, reading into buf.
func roundTrip(tb testing.TB, a, b net.Conn, msg, buf []byte) {
	for _, d := range [2][2]net.Conn{{a, b}, {b, a}} {
		if _, err := d[0].Write(msg); err != nil {
			tb.Fatal(err)
		}
		n, err := d[1].Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			tb.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
		}
	}
}

// TestDataPathAllocs: a datagram each way on the selected path allocates
// nothing, on a host, a server-reflexive and a relayed pair (the
// in-process TURN server's work counted too). Keepalives and consent are
// off, since AllocsPerRun counts every goroutine.
func TestDataPathAllocs(t *testing.T) {
	for _, name := range []string{"host", "srflx", "relay"} {
		t.Run(name, func(t *testing.T) {
			ca, cb := dataPath(t, name)
			msg, buf := bytes.Repeat([]byte{'d'}, 1000), make([]byte, 1500)
			ca.SetDeadline(time.Now().Add(10 * time.Second))
			cb.SetDeadline(time.Now().Add(10 * time.Second))
			warm(t, ca, cb, msg, buf)
			if testutil.RaceEnabled {
				t.Log("allocations not counted: the race detector makes sync.Pool drop buffers")
				return
			}
			if n := testing.AllocsPerRun(200, func() { roundTrip(t, ca, cb, msg, buf) }); n != 0 {
				t.Errorf("%v allocations per round trip, want 0", n)
			}
		})
	}
}

// BenchmarkConnRoundTrip measures one 1000-byte datagram each way on the
// selected path, host to host and through a TURN relay on one side (the
// in-process TURN server's work included).
func BenchmarkConnRoundTrip(b *testing.B) {
	for _, name := range []string{"host", "relay"} {
		b.Run(name, func(b *testing.B) {
			ca, cb := dataPath(b, name)
			msg, buf := bytes.Repeat([]byte{'d'}, 1000), make([]byte, 1500)
			warm(b, ca, cb, msg, buf)
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(msg)))
			for b.Loop() {
				roundTrip(b, ca, cb, msg, buf)
			}
		})
	}
}
