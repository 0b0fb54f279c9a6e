package peer

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// icePair connects two ICE agents on 127.0.0.1 (host candidates, signalled
// directly) and returns the Dialer's and the Acceptor's Conn; cleanup
// closes the agents.
func icePair(tb testing.TB) (a, b net.Conn, agents [2]*ice.Agent) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	defer cancel()
	g := ice.GatherConfig{IncludeLoopback: true, DisableIPv6: true,
		IPFilter: func(a netip.Addr) bool { return a.IsLoopback() }}
	cands := [2][]ice.Candidate{}
	for i := range agents {
		ag, err := ice.NewAgent(ice.AgentConfig{Gather: g})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ag.Close() })
		if cands[i], err = ag.Gather(ctx); err != nil {
			tb.Fatal(err)
		}
		agents[i] = ag
	}
	uA, pA := agents[0].LocalCredentials()
	uB, pB := agents[1].LocalCredentials()
	type res struct {
		c   net.Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := agents[1].Accept(ctx, uA, pA, cands[0])
		accepted <- res{c, err}
	}()
	a, err := agents[0].Dial(ctx, uB, pB, cands[1])
	r := <-accepted
	if err != nil || r.err != nil {
		tb.Fatalf("Dial: %v, Accept: %v", err, r.err)
	}
	return a, r.c, agents
}

// TestPacketConnAllocs: a datagram each way through the QUIC adapter
// (packetConn's WriteTo and ReadFrom over the ICE Conn) allocates nothing,
// as the ICE data path under it does not.
func TestPacketConnAllocs(t *testing.T) {
	ca, cb, _ := icePair(t)
	a, b := packetConn{ca}, packetConn{cb}
	msg, buf := bytes.Repeat([]byte{0x40}, PacketSize), make([]byte, 1500)
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	roundTrip := func() {
		for _, d := range [2][2]packetConn{{a, b}, {b, a}} {
			if _, err := d[0].WriteTo(msg, peerAddr{}); err != nil {
				t.Fatal(err)
			}
			n, from, err := d[1].ReadFrom(buf)
			if err != nil || n != len(msg) || from != (peerAddr{}) {
				t.Fatalf("ReadFrom: %d bytes from %v, %v", n, from, err)
			}
		}
	}
	roundTrip()
	if testutil.RaceEnabled {
		t.Log("allocations not counted: the race detector makes sync.Pool drop buffers")
		return
	}
	if n := testing.AllocsPerRun(200, roundTrip); n != 0 {
		t.Errorf("%v allocations per round trip, want 0", n)
	}
}

// quicStream connects QUIC over the two packet conns (the Dialer's side
// is the client) and returns a stream from the client to the server.
func quicStream(tb testing.TB, client, server net.PacketConn, to net.Addr) (send, recv *quic.Stream) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	defer cancel()
	idA, err := newIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	idB, err := newIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	fpA, _ := parseFingerprint(idA.fingerprint)
	fpB, _ := parseFingerprint(idB.fingerprint)
	ct, st := &quic.Transport{Conn: client}, &quic.Transport{Conn: server}
	tb.Cleanup(func() { ct.Close(); st.Close() })
	ln, err := st.Listen(tlsConfig(idB, fpA, true), quicConfig())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	type res struct {
		s   *quic.Stream
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err != nil {
			accepted <- res{nil, err}
			return
		}
		s, err := c.AcceptStream(ctx)
		accepted <- res{s, err}
	}()
	c, err := ct.Dial(ctx, to, tlsConfig(idA, fpB, false), quicConfig())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.CloseWithError(0, "") })
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Write([]byte{1}); err != nil { // the peer sees the stream once data flows
		tb.Fatal(err)
	}
	r := <-accepted
	if r.err != nil {
		tb.Fatal(r.err)
	}
	if _, err := io.ReadFull(r.s, make([]byte, 1)); err != nil {
		tb.Fatal(err)
	}
	return s, r.s
}

// benchStream measures a bulk transfer on one stream, 1 MiB per
// iteration.
func benchStream(b *testing.B, send, recv *quic.Stream) {
	chunk := make([]byte, 1<<20)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		_, err := io.CopyBuffer(io.Discard, recv, buf)
		done <- err
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := send.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	send.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQUICOverICE: bulk data over QUIC on the ICE Conn of a host
// pair on loopback, what the peers run; BenchmarkQUICOverUDP: the same
// QUIC configuration on plain UDP sockets, the ceiling.
func BenchmarkQUICOverICE(b *testing.B) {
	ca, cb, agents := icePair(b)
	send, recv := quicStream(b, packetConn{ca}, packetConn{cb}, peerAddr{})
	benchStream(b, send, recv)
	b.Logf("queue drops: sender %d, receiver %d", agents[0].Stats().Dropped, agents[1].Stats().Dropped)
}

func BenchmarkQUICOverUDP(b *testing.B) {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	cc, err := net.ListenUDP("udp", lo)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	sc, err := net.ListenUDP("udp", lo)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	send, recv := quicStream(b, cc, sc, sc.LocalAddr())
	benchStream(b, send, recv)
}
