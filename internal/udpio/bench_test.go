package udpio

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// The benchmarks below compare the server side of a loopback echo: one
// socket reading and answering datagrams, one per system call (plain), with
// this package's recvmmsg/sendmmsg (batch), and with golang.org/x/net/ipv4's
// ReadBatch/WriteBatch (xnet). The client always batches, with a window of
// 64 datagrams in flight, so that it is not the bottleneck being measured.
// Run: go test -run '^$' -bench Echo ./internal/udpio/

const benchWindow = 64

func BenchmarkEcho(b *testing.B) {
	for _, bc := range []struct {
		name  string
		opt   Options
		batch int
		xnet  bool
	}{
		{"plain", Options{}, 1, false},
		{"batch8", Options{Batch: true}, 8, false},
		{"batch32", Options{Batch: true}, 32, false},
		{"batch64", Options{Batch: true}, 64, false},
		{"xnet32", Options{}, 32, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := listenOne(b, loop4, bc.opt)
			var wg sync.WaitGroup
			wg.Add(1)
			if bc.xnet {
				go func() { defer wg.Done(); xnetEchoLoop(s.UDPConn(), bc.batch) }()
			} else {
				go func() { defer wg.Done(); echoLoop(s, bc.batch) }()
			}
			defer wg.Wait()
			defer s.Close()
			c := listenOne(b, loop4, Options{Batch: true})
			runEchoClient(b, c, s)
		})
	}
}

func echoLoop(c *Conn, batch int) {
	in := newMessages(batch, 1500)
	out := make([]Message, batch)
	for {
		n, err := c.ReadBatch(in)
		if err != nil {
			return
		}
		for i := range n {
			out[i] = Message{Buf: in[i].Buf[:in[i].N], Addr: in[i].Addr}
		}
		c.WriteBatch(out[:n])
	}
}

func xnetEchoLoop(uc *net.UDPConn, batch int) {
	pc := ipv4.NewPacketConn(uc)
	ms := make([]ipv4.Message, batch)
	bufs := make([][]byte, batch)
	for i := range ms {
		bufs[i] = make([]byte, 1500)
		ms[i].Buffers = [][]byte{bufs[i]}
	}
	out := make([]ipv4.Message, batch)
	for i := range out {
		out[i].Buffers = [][]byte{nil}
	}
	for {
		n, err := pc.ReadBatch(ms, 0)
		if err != nil {
			return
		}
		for i := range n {
			out[i].Buffers[0] = bufs[i][:ms[i].N]
			out[i].Addr = ms[i].Addr
		}
		for w := 0; w < n; {
			k, err := pc.WriteBatch(out[w:n], 0)
			if err != nil {
				break
			}
			w += k
		}
	}
}

func runEchoClient(b *testing.B, c, s *Conn) {
	payload := make([]byte, 48) // about a STUN Binding response
	out := make([]Message, benchWindow)
	for i := range out {
		out[i] = Message{Buf: payload, Addr: s.LocalAddr()}
	}
	in := newMessages(benchWindow, 1500)
	lost := 0
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		w := min(benchWindow, b.N-sent)
		if _, err := c.WriteBatch(out[:w]); err != nil {
			b.Fatal(err)
		}
		c.UDPConn().SetReadDeadline(time.Now().Add(time.Second))
		for got := 0; got < w; {
			n, err := c.ReadBatch(in)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				lost += w - got
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		sent += w
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(lost), "lost")
}
