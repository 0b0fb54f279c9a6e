package ice

import (
	"bytes"
	"net"
	"testing"

	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// quiet is an AgentConfig without keepalives and consent checks, so that
// once connected the Agents send nothing of their own: the data path is
// all that runs.
func quiet(g GatherConfig) AgentConfig {
	return AgentConfig{Gather: g, Keepalive: -1, ConsentInterval: -1}
}

// dataPath connects two quiet agents over one data path and returns their
// Conns: "host" is host to host; "relay" is A's relayed candidate (a UDP
// allocation on the in-process TURN server) to B's host.
func dataPath(tb testing.TB, name string) (a, b net.Conn) {
	tb.Helper()
	gA := loopbackOnly()
	if name == "relay" {
		udp, _, _, _ := turnServer(tb)
		gA.RelayOnly = true
		gA.TURNServers = []TURNServer{{Addr: udp, Transport: turnclient.UDP, Username: "u", Password: "p"}}
	}
	_, _, a, b = connectPair(tb, quiet(gA), quiet(loopbackOnly()))
	return a, b
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

// BenchmarkConnRoundTrip measures one 1000-byte datagram each way on the
// selected path, host to host and through a TURN relay on one side (the
// in-process TURN server's work included).
func BenchmarkConnRoundTrip(b *testing.B) {
	for _, name := range []string{"host", "relay"} {
		b.Run(name, func(b *testing.B) {
			ca, cb := dataPath(b, name)
			msg, buf := bytes.Repeat([]byte{'d'}, 1000), make([]byte, 1500)
			roundTrip(b, ca, cb, msg, buf)
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(msg)))
			for b.Loop() {
				roundTrip(b, ca, cb, msg, buf)
			}
		})
	}
}
