//go:build linux

package udpio

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ringModes runs f with io_uring and without it. The io_uring case is
// skipped, with the reason, where the kernel refuses io_uring.
func ringModes(t *testing.T, f func(t *testing.T, ring bool)) {
	t.Run("io_uring", func(t *testing.T) {
		r, err := newRing()
		if err != nil {
			t.Skipf("no io_uring here: %v", err)
		}
		r.release()
		f(t, true)
	})
	t.Run("one call per socket", func(t *testing.T) {
		ringDisabled.Store(true)
		defer ringDisabled.Store(false)
		f(t, false)
	})
}

// TestSenderSendSpread: messages through many sockets at once reach
// their destinations from the right source, a bad destination and a
// closed socket fail alone, and nothing is allocated.
func TestSenderSendSpread(t *testing.T) {
	ringModes(t, func(t *testing.T, ring bool) {
		s := NewSender()
		const n = 6
		dst := listenOne(t, loop4, Options{Batch: true})
		var srcs []*net.UDPConn
		var ts []*Target
		for range n {
			c := listenUDP(t, loop4)
			tgt, err := NewTarget(c, false)
			if err != nil {
				t.Fatal(err)
			}
			srcs, ts = append(srcs, c), append(ts, tgt)
		}
		closed := listenUDP(t, loop4)
		closedTgt, err := NewTarget(closed, false)
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
		var ms []Message
		var mts []*Target
		for i := range n {
			ms = append(ms, Message{Buf: fmt.Appendf(nil, "m%d", i), Addr: dst.LocalAddr()})
			mts = append(mts, ts[i])
		}
		ms = append(ms, Message{Buf: []byte("v6"), Addr: netip.MustParseAddrPort("[::1]:9")}, Message{Buf: []byte("closed"), Addr: dst.LocalAddr()},
			Message{Buf: []byte("m0b"), Addr: dst.LocalAddr()})
		mts = append(mts, ts[1], closedTgt, ts[0])
		if sent := s.SendSpread(mts, ms); sent != n+1 {
			t.Errorf("SendSpread sent %d, want %d", sent, n+1)
		}
		for i, m := range ms {
			want := len(m.Buf)
			if i == n || i == n+1 {
				want = -1
			}
			if m.N != want {
				t.Errorf("message %d (%s): N = %d, want %d", i, m.Buf, m.N, want)
			}
		}
		from := map[string]netip.AddrPort{}
		in := newMessages(16, 64)
		for got := 0; got < n+1; {
			dst.UDPConn().SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := dst.ReadBatch(in)
			if err != nil {
				t.Fatalf("after %d datagrams: %v", got, err)
			}
			for _, m := range in[:k] {
				from[string(m.Buf[:m.N])] = m.Addr
			}
			got += k
		}
		for i := range n {
			if a := from[fmt.Sprintf("m%d", i)]; a != localAddr(srcs[i]) {
				t.Errorf("m%d came from %v, want %v", i, a, localAddr(srcs[i]))
			}
		}
		if a := from["m0b"]; a != localAddr(srcs[0]) {
			t.Errorf("m0b came from %v, want %v", a, localAddr(srcs[0]))
		}
		if (s.ring != nil) != ring {
			t.Fatalf("ring %v, want %v", s.ring != nil, ring)
		}
		if ring && s.ring.submits == 0 {
			t.Error("the ring submitted nothing")
		}
		good, goodTs := ms[:n], mts[:n]
		if a := testing.AllocsPerRun(50, func() { s.SendSpread(goodTs, good) }); a != 0 {
			t.Errorf("SendSpread: %v allocations", a)
		}
	})
}

// TestPollerRingReads: with many sockets ready, each datagram reaches the
// handler with its data, its source and its socket, in either mode, and
// the read path allocates nothing.
func TestPollerRingReads(t *testing.T) {
	ringModes(t, func(t *testing.T, ring bool) {
		h := &counter{}
		p, err := NewPoller[int](PollConfig{Headroom: 36, Tailroom: 4, MaxDatagram: 2048}, h)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if (p.rr != nil) != ring {
			t.Fatalf("ring %v, want %v", p.rr != nil, ring)
		}
		const socks = ringBatch + manyReady // two io_uring batches per round
		var to []netip.AddrPort
		for i := range socks {
			c := listenUDP(t, loop4)
			r, err := p.Add(c, i)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Remove(r)
			to = append(to, localAddr(c))
		}
		s := listenUDP(t, loop4)
		payload := make([]byte, 100)
		run := func() {
			for i := range socks {
				s.WriteToUDPAddrPort(payload, to[i])
			}
			deadline := time.Now().Add(5 * time.Second)
			for got := 0; got < socks && time.Now().Before(deadline); {
				got += p.PollNow()
			}
		}
		run()
		if h.n != socks || h.bytes != socks*len(payload) {
			t.Fatalf("handled %d datagrams of %d bytes, want %d of %d", h.n, h.bytes, socks, socks*len(payload))
		}
		if ring && p.rr.r.submits == 0 {
			t.Error("the ring submitted nothing")
		}
		if a := testing.AllocsPerRun(20, run); a != 0 {
			t.Errorf("%v allocations per round", a)
		}
	})
}

// TestSendSpreadRingFails: when io_uring_enter itself fails, the Sender
// counts that call's messages as not sent and goes back to one system
// call per socket from then on.
func TestSendSpreadRingFails(t *testing.T) {
	s := NewSender()
	dst := listenOne(t, loop4, Options{Batch: true})
	src := listenUDP(t, loop4)
	tgt, err := NewTarget(src, false)
	if err != nil {
		t.Fatal(err)
	}
	ts := []*Target{tgt}
	ms := []Message{{Buf: []byte("first"), Addr: dst.LocalAddr()}}
	s.SendSpread(ts, ms) // makes the ring, if there is io_uring
	if s.ring == nil {
		t.Skip("no io_uring here")
	}
	unix.Close(s.ring.fd)
	s.ring.fd = -1 // io_uring_enter now fails with EBADF
	if sent := s.SendSpread(ts, ms); sent != 0 || ms[0].N != -1 || !s.ring.broken {
		t.Fatalf("with a failing ring: sent %d, N %d, broken %v; want 0, -1, true", sent, ms[0].N, s.ring.broken)
	}
	ms[0].Buf = []byte("third")
	if sent := s.SendSpread(ts, ms); sent != 1 {
		t.Fatalf("after the ring broke: sent %d, want 1", sent)
	}
	in := newMessages(4, 64)
	var got []string
	for len(got) < 2 {
		dst.UDPConn().SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := dst.ReadBatch(in)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		for _, m := range in[:k] {
			got = append(got, string(m.Buf[:m.N]))
		}
	}
	if got[0] != "first" || got[1] != "third" {
		t.Errorf("received %q, want [first third]", got)
	}
}

// BenchmarkSendSpread: the cost per datagram of SendSpread with one
// datagram for each of k sockets, with io_uring available and without
// it, so that the batch size where io_uring starts to pay can be read off
// (one socket takes one sendmsg in both modes). The
// destination is never read; the datagrams that do not fit are dropped
// by the kernel alike in both modes.
func BenchmarkSendSpread(b *testing.B) {
	for _, k := range []int{1, 2, 4, 32} {
		for _, ring := range []bool{true, false} {
			mode := "io_uring"
			if !ring {
				mode = "one_call_per_socket"
			}
			b.Run(fmt.Sprintf("sockets=%d/%s", k, mode), func(b *testing.B) {
				ringDisabled.Store(!ring)
				defer ringDisabled.Store(false)
				if ring {
					if r, err := newRing(); err != nil {
						b.Skipf("no io_uring here: %v", err)
					} else {
						r.release()
					}
				}
				dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				defer dst.Close()
				s := NewSender()
				ts := make([]*Target, k)
				ms := make([]Message, k)
				for i := range k {
					c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					if ts[i], err = NewTarget(c, false); err != nil {
						b.Fatal(err)
					}
				}
				payload := make([]byte, 100)
				to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
				b.ResetTimer()
				for range b.N {
					for i := range ms {
						ms[i] = Message{Buf: payload, Addr: to}
					}
					s.SendSpread(ts, ms)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*k), "ns/datagram")
			})
		}
	}
}
