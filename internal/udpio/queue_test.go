package udpio

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestQueue: datagrams put on a Queue arrive, each whole and in order
// (runs of equal size go out with GSO where the kernel has it); Put
// refuses beyond the limit until Run takes the queue; Run returns when
// stopped.
func TestQueue(t *testing.T) {
	src, dst := listenOne(t, loop4, Options{}), listenOne(t, loop4, Options{})
	q, err := NewQueue(src.UDPConn(), false, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if !q.Put(bytes.Repeat([]byte{byte(i)}, 1200), dst.LocalAddr()) {
			t.Fatalf("Put %d refused below the limit", i)
		}
	}
	if q.Put([]byte{9}, dst.LocalAddr()) {
		t.Fatal("Put accepted a fifth datagram over a limit of 4")
	}
	stop, ran := make(chan struct{}), make(chan struct{})
	go func() { q.Run(stop); close(ran) }()
	select {
	case <-q.Room():
	case <-time.After(5 * time.Second):
		t.Fatal("no room after Run started")
	}
	if !q.Put([]byte{4, 4, 4}, dst.LocalAddr()) { // shorter: the end of a GSO run
		t.Fatal("Put refused after Run took the queue")
	}
	buf := make([]byte, 2000)
	dst.UDPConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 5 {
		n, from, err := dst.UDPConn().ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		want := bytes.Repeat([]byte{byte(i)}, 1200)
		if i == 4 {
			want = []byte{4, 4, 4}
		}
		if from != src.LocalAddr() || !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %d bytes %x... from %v", i, n, buf[:min(n, 4)], from)
		}
	}
	close(stop)
	<-ran
	if d := q.Dropped(); d != 0 {
		t.Errorf("%d dropped", d)
	}
}

// TestQueueNoAllocs: once running, a Queue allocates nothing per datagram
// (its buffers are pooled).
func TestQueueNoAllocs(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	src, dst := listenOne(t, loop4, Options{}), listenOne(t, loop4, Options{})
	q, err := NewQueue(src.UDPConn(), false, 64)
	if err != nil {
		t.Fatal(err)
	}
	stop, ran := make(chan struct{}), make(chan struct{})
	go func() { q.Run(stop); close(ran) }()
	defer func() { close(stop); <-ran }()
	msg, buf := make([]byte, 1200), make([]byte, 2000)
	dst.UDPConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	send := func() {
		for !q.Put(msg, dst.LocalAddr()) {
			<-q.Room()
		}
		if _, _, err := dst.UDPConn().ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	send()
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Errorf("%v allocations per datagram, want 0", n)
	}
}

// TestWrap: a socket opened elsewhere, wrapped, reads several datagrams
// per ReadBatch, each whole and with its source.
func TestWrap(t *testing.T) {
	src := listenOne(t, loop4, Options{})
	raw, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Wrap(raw, false)
	if err != nil {
		raw.Close()
		t.Fatal(err)
	}
	defer c.Close()
	if c.LocalAddr().Port() == 0 || !c.LocalAddr().Addr().Is4() {
		t.Fatalf("LocalAddr %v", c.LocalAddr())
	}
	for i := range 3 {
		if _, err := src.WriteTo([]byte{byte(i), 1, 2}, c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	ms := newMessages(8, 1500)
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := 0
	for got < 3 {
		n, err := c.ReadBatch(ms)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms[:n] {
			if m.Addr != src.LocalAddr() || !bytes.Equal(m.Buf[:m.N], []byte{byte(got), 1, 2}) {
				t.Fatalf("datagram %d: %x from %v", got, m.Buf[:m.N], m.Addr)
			}
			got++
		}
	}
}
