package stunserver

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
)

// BenchmarkHandle is the CPU cost of answering one Binding request.
func BenchmarkHandle(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    *responder
	}{
		{"plain", &responder{}},
		{"rfc5780+software", testResponder("icebreaker/1.0")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWorker(bc.r, new(counters))
			pkt := request(stun.BindingRequest, stun.NewTransactionID(), true)
			out := make([]byte, 0, scratchSize)
			b.ReportAllocs()
			for b.Loop() {
				w.handle(out[:0], pkt, testFrom, testOrigin)
			}
		})
	}
}

// BenchmarkUDPServer measures Binding requests answered per second over
// loopback, with one datagram per system call (plain) or recvmmsg/sendmmsg
// batches, and one or two server sockets. Each client keeps a window of 64
// requests in flight. Compare with: go test -run '^$' -bench UDPServer
// -benchtime 200000x -count 5 ./stun/stunserver/
func BenchmarkUDPServer(b *testing.B) {
	for _, bc := range []struct {
		name    string
		batch   bool
		size    int
		sockets int
		clients int
	}{
		{"plain/1sock", false, 1, 1, 2},
		{"batch8/1sock", true, 8, 1, 2},
		{"batch32/1sock", true, 32, 1, 2},
		{"plain/2sock", false, 1, 2, 4},
		{"batch32/2sock", true, 32, 2, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			defer func(batch bool, size int) { udpBatch, udpBatchSize = batch, size }(udpBatch, udpBatchSize)
			udpBatch, udpBatchSize = bc.batch, bc.size
			s, err := Listen(Config{UDP: loop4, UDPSockets: bc.sockets})
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(b.Context())
			defer s.Close()
			to := endpoint(b, s, "udp", RolePrimary)
			var lost atomic.Int64
			var wg sync.WaitGroup
			per := b.N / bc.clients
			b.ReportAllocs()
			b.ResetTimer()
			for range bc.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lost.Add(int64(benchClient(b, to, per)))
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(per*bc.clients)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(lost.Load()), "lost")
		})
	}
}

// benchClient sends n Binding requests in windows and returns how many got
// no answer within a second.
func benchClient(b *testing.B, to netip.AddrPort, n int) int {
	cs, err := udpio.ListenGroup(loop4, 1, udpio.Options{Batch: true})
	if err != nil {
		b.Error(err)
		return n
	}
	c := cs[0]
	defer c.Close()
	const window = 64
	req := request(stun.BindingRequest, stun.NewTransactionID(), true)
	out := make([]udpio.Message, window)
	for i := range out {
		out[i] = udpio.Message{Buf: req, Addr: to}
	}
	in := make([]udpio.Message, window)
	for i := range in {
		in[i].Buf = make([]byte, 256)
	}
	lost := 0
	for sent := 0; sent < n; {
		w := min(window, n-sent)
		if _, err := c.WriteBatch(out[:w]); err != nil {
			b.Error(err)
			return n
		}
		c.UDPConn().SetReadDeadline(time.Now().Add(time.Second))
		for got := 0; got < w; {
			k, err := c.ReadBatch(in)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				lost += w - got
				break
			}
			if err != nil {
				b.Error(err)
				return n
			}
			got += k
		}
		sent += w
	}
	return lost
}
