package udpio

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// got is one datagram a recorder saw.
type got struct {
	sock string
	data string
	from netip.AddrPort
	room bool // the slot had the configured room around the datagram
}

// recorder is a PollHandler that keeps copies of what it is handed.
type recorder struct {
	cfg    PollConfig
	mu     sync.Mutex
	seen   []got
	failed int
	more   chan struct{}
	// held are the slots handed over since the last Flush, with what
	// they held: Flush checks that none was reused before it.
	held    []heldSlot
	reused  int
	flushes int
}

type heldSlot struct {
	slot []byte
	data string
}

func (r *recorder) Received(sock string, ms []Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		room := len(m.Buf) == r.cfg.Headroom+m.N+r.cfg.Tailroom
		data := string(m.Buf[r.cfg.Headroom : r.cfg.Headroom+m.N])
		r.seen = append(r.seen, got{sock, data, m.Addr, room})
		// The slot is the handler's: writing around the datagram is allowed.
		clear(m.Buf[:r.cfg.Headroom])
		clear(m.Buf[r.cfg.Headroom+m.N:])
		r.held = append(r.held, heldSlot{m.Buf[r.cfg.Headroom : r.cfg.Headroom+m.N], data})
	}
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.held {
		if string(h.slot) != h.data {
			r.reused++
		}
	}
	r.held = r.held[:0]
	r.flushes++
}

func (r *recorder) ReadFailed(string, error) {
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
}

// wait waits until the recorder has n datagrams and returns them.
func (r *recorder) wait(t *testing.T, n int) []got {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		seen := append([]got(nil), r.seen...)
		r.mu.Unlock()
		if len(seen) >= n {
			return seen
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("got %d datagrams, want %d", len(seen), n)
		}
	}
}

func listenUDP(t *testing.T, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Skipf("no %v: %v", addr.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func localAddr(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// TestPoller reads two sockets (IPv4 and IPv6) with one Poller: every
// datagram reaches the handler with its socket's value, its source and
// the configured room around it, in order per socket, also when large
// datagrams overflow the arena within one drain, and no slot is reused
// before the handler's Flush; after Remove a socket's
// datagrams no longer arrive; Close ends Run and leaves no goroutine.
func TestPoller(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := PollConfig{Headroom: 36, Tailroom: 4, MaxDatagram: 60000}
	rec := &recorder{cfg: cfg, more: make(chan struct{}, 1)}
	p, err := NewPoller[string](cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run() }()

	a, b := listenUDP(t, loop4), listenUDP(t, loop6)
	ra, err := p.Add(a, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(b, "b"); err != nil {
		t.Fatal(err)
	}
	sa, sb := listenUDP(t, loop4), listenUDP(t, loop6)
	// Sizes cross the arena: three 50,000-byte datagrams cannot share it.
	sizes := []int{1, 100, 50000, 50000, 7, 50000, 1200, 0}
	var want []got
	for i, n := range sizes {
		for _, s := range []struct {
			name string
			from *net.UDPConn
			to   *net.UDPConn
		}{{"a", sa, a}, {"b", sb, b}} {
			d := bytes.Repeat([]byte{byte(i + 1)}, n)
			if _, err := s.from.WriteToUDPAddrPort(d, localAddr(s.to)); err != nil {
				t.Fatal(err)
			}
			want = append(want, got{s.name, string(d), localAddr(s.from), true})
		}
	}
	seen := rec.wait(t, len(want))
	for _, name := range []string{"a", "b"} {
		var w, g []got
		for _, x := range want {
			if x.sock == name {
				w = append(w, x)
			}
		}
		for _, x := range seen {
			if x.sock == name {
				g = append(g, x)
			}
		}
		if len(g) != len(w) {
			t.Fatalf("socket %s: %d datagrams, want %d", name, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("socket %s datagram %d: %d bytes from %v (room %v), want %d bytes from %v", name, i, len(g[i].data), g[i].from, g[i].room, len(w[i].data), w[i].from)
			}
		}
	}

	p.Remove(ra)
	p.Remove(Registration{}) // ignored
	sa.WriteToUDPAddrPort([]byte("late"), localAddr(a))
	sb.WriteToUDPAddrPort([]byte("mark"), localAddr(b))
	seen = rec.wait(t, len(want)+1)
	for _, x := range seen[len(want):] {
		if x.sock != "b" {
			t.Errorf("datagram %q from a removed socket", x.data)
		}
	}
	rec.mu.Lock()
	if rec.failed != 0 || rec.reused != 0 || rec.flushes == 0 {
		t.Errorf("%d read errors, %d slots reused before Flush, %d flushes", rec.failed, rec.reused, rec.flushes)
	}
	rec.mu.Unlock()
	p.Close()
	p.Close()
	a.Close()
	b.Close()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	testutil.CheckGoroutines(t, before)
}

// runPoller runs a Poller with a recorder until the test ends.
func runPoller(t *testing.T, cfg PollConfig) (*Poller[string], *recorder) {
	t.Helper()
	rec := &recorder{cfg: cfg.withDefaults(), more: make(chan struct{}, 1)}
	p, err := NewPoller[string](cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	t.Cleanup(func() { p.Close(); <-done })
	return p, rec
}

// TestPollerMaxDatagram: a datagram longer than MaxDatagram is cut to it.
func TestPollerMaxDatagram(t *testing.T) {
	p, rec := runPoller(t, PollConfig{MaxDatagram: 100})
	c, s := listenUDP(t, loop4), listenUDP(t, loop4)
	r, err := p.Add(c, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Remove(r)
	s.WriteToUDPAddrPort(make([]byte, 300), localAddr(c))
	if g := rec.wait(t, 1)[0]; len(g.data) != 100 {
		t.Errorf("read %d bytes, want 100", len(g.data))
	}
}

// TestPollerManySockets: with many sockets ready at once the Poller reads
// one datagram from each per round (manyReady); a socket that holds more
// is served in the next rounds, and every datagram arrives, in order per
// socket.
func TestPollerManySockets(t *testing.T) {
	const socks, each = 3 * manyReady, 5
	p, rec := runPoller(t, PollConfig{Headroom: 8})
	sender := listenUDP(t, loop4)
	var conns []*net.UDPConn
	for i := range socks {
		c := listenUDP(t, loop4)
		r, err := p.Add(c, string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(r)
		conns = append(conns, c)
	}
	for k := range each {
		for _, c := range conns {
			sender.WriteToUDPAddrPort([]byte{byte(k)}, localAddr(c))
		}
	}
	next := map[string]byte{}
	for _, g := range rec.wait(t, socks*each) {
		if g.data != string([]byte{next[g.sock]}) {
			t.Fatalf("socket %s: datagram %x, want %x", g.sock, g.data, next[g.sock])
		}
		if g.from != localAddr(sender) {
			t.Fatalf("socket %s: datagram from %v, want %v", g.sock, g.from, localAddr(sender))
		}
		next[g.sock]++
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.reused != 0 {
		t.Errorf("%d slots reused before Flush", rec.reused)
	}
}
