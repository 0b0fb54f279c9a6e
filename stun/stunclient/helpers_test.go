package stunclient

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// memNet is an in-memory datagram network. Built from channels, it works
// inside a synctest bubble, where real sockets do not block durably.
type memNet struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*memConn
}

type memPacket struct {
	b    []byte
	from netip.AddrPort
}

// memConn is one endpoint of a memNet; it implements net.PacketConn.
// Packets to an address nobody listens on are dropped, as UDP would.
type memConn struct {
	net    *memNet
	addr   netip.AddrPort
	in     chan memPacket
	closed chan struct{}
	once   sync.Once
}

func newMemNet() *memNet { return &memNet{conns: make(map[netip.AddrPort]*memConn)} }

func (n *memNet) listen(t testing.TB, addr string) *memConn {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.conns[ap]; ok {
		t.Fatalf("memNet: %s in use", ap)
	}
	c := &memConn{net: n, addr: ap, in: make(chan memPacket, 256), closed: make(chan struct{})}
	n.conns[ap] = c
	return c
}

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), net.UDPAddrFromAddrPort(p.from), nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *memConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	to := addr.(*net.UDPAddr).AddrPort()
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	c.net.mu.Lock()
	dst := c.net.conns[to]
	c.net.mu.Unlock()
	if dst != nil {
		select {
		case dst.in <- memPacket{b: append([]byte(nil), b...), from: c.addr}:
		default: // queue full: dropped, as UDP would
		}
	}
	return len(b), nil
}

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		delete(c.net.conns, c.addr)
		c.net.mu.Unlock()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr              { return net.UDPAddrFromAddrPort(c.addr) }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// request is what a test server saw: the parsed request (over its own
// copy of the bytes), where from, and when.
type request struct {
	msg  *stun.Message
	from netip.AddrPort
	at   time.Time
}

// handler answers a request with zero or more packets.
type handler func(req *stun.Message, from netip.AddrPort) [][]byte

// testServer runs h on conn until conn is closed, recording every
// request. Cleanup (through t.Cleanup) closes conn and waits for the
// goroutine.
type testServer struct {
	conn *memConn
	mu   sync.Mutex
	reqs []request
	done chan struct{}
}

func serveMem(t testing.TB, conn *memConn, h handler) *testServer {
	s := &testServer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		for {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			from := addr.(*net.UDPAddr).AddrPort()
			m := new(stun.Message)
			if m.Parse(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			s.mu.Lock()
			s.reqs = append(s.reqs, request{msg: m, from: from, at: time.Now()})
			s.mu.Unlock()
			for _, r := range h(m, from) {
				conn.WriteTo(r, net.UDPAddrFromAddrPort(from))
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

func (s *testServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// bindingSuccess answers req with XOR-MAPPED-ADDRESS from.
func bindingSuccess(req *stun.Message, from netip.AddrPort) []byte {
	b := stun.AppendHeader(nil, stun.BindingSuccess, req.TransactionID)
	return stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, req.TransactionID)
}

// errorResponse answers req with an error code.
func errorResponse(req *stun.Message, code int) []byte {
	b := stun.AppendHeader(nil, stun.Type{Method: req.Type.Method, Class: stun.ClassError}, req.TransactionID)
	return stun.AppendErrorCode(b, code, "")
}

func echoBinding(req *stun.Message, from netip.AddrPort) [][]byte {
	return [][]byte{bindingSuccess(req, from)}
}

func silent(*stun.Message, netip.AddrPort) [][]byte { return nil }

func mustNew(t testing.TB, conn net.PacketConn, cfg Config) *Client {
	t.Helper()
	c, err := New(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkGoroutines fails t if, after cleanup, more goroutines run than
// before the test started (retrying for a bounded time, as exiting
// goroutines take a moment to disappear).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for range 200 {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond) // polling for exit, bounded: not a synchronisation stand-in
		}
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}
