package stunserver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// recorder is a Handler with every optional hook. It answers requests
// with an empty success response, records ChannelData frames and closed
// connections, and keeps the Conn of the last message.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
	closed []Conn
	last   Conn
	got    chan struct{} // a message arrived
	onReq  func(req *Request)
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 100)} }

func (r *recorder) ServeSTUN(out []byte, req *Request) []byte {
	r.mu.Lock()
	r.last = req.Conn
	f := r.onReq
	r.mu.Unlock()
	if f != nil {
		f(req)
	}
	r.got <- struct{}{}
	if req.Msg.Type.Class != stun.ClassRequest {
		return nil
	}
	out = stun.AppendHeader(out, stun.Type{Method: req.Msg.Type.Method, Class: stun.ClassSuccess}, req.Msg.TransactionID)
	return stun.AppendFingerprint(out)
}

// FrameOther takes TURN ChannelData, framed by package turn's rule with
// the loose channel range.
func (r *recorder) FrameOther(_ Conn, b []byte) (int, int, error) {
	return turn.FrameChannelData(b, true)
}

func (r *recorder) ServeOther(req *Request, frame []byte) {
	r.mu.Lock()
	r.frames = append(r.frames, append([]byte(nil), frame...))
	r.last = req.Conn
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) ConnClosed(c Conn) {
	r.mu.Lock()
	r.closed = append(r.closed, c)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) wait(t testing.TB, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(ioWait):
			t.Fatal("handler not called")
		}
	}
}

func (r *recorder) snapshot() (frames [][]byte, closed []Conn, last Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames...), append([]Conn(nil), r.closed...), r.last
}

var allocate = stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}

// TestChannelDataReachesHandler: ChannelData over UDP (one datagram) and
// over TCP (framed by its length and padding, mixed with STUN messages
// and split at arbitrary points) reaches an OtherHandler.
func TestChannelDataReachesHandler(t *testing.T) {
	h := newRecorder()
	s := startServer(t, Config{UDP: loop4, TCP: loop4, UDPSockets: 1, Handler: h})

	u := udpClient(t, ip1)
	unpadded := turn.AppendChannelData(nil, 0x4001, []byte("abcde"), false)
	if _, err := u.WriteToUDPAddrPort(unpadded, endpoint(t, s, "udp", RolePrimary)); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 1)
	frames, _, last := h.snapshot()
	if len(frames) != 1 || !bytes.Equal(frames[0], unpadded) || last.Network() != "udp" || last.RemoteAddr().IsValid() {
		t.Fatalf("UDP frames %x, conn %v", frames, last)
	}

	c := dialTCP(t, s)
	id := stun.NewTransactionID()
	var stream []byte
	want := [][]byte{turn.AppendChannelData(nil, 0x4000, []byte("x"), true), turn.AppendChannelData(nil, 0x7fff, bytes.Repeat([]byte{7}, 5000), true),
		turn.AppendChannelData(nil, 0x4002, nil, true)}
	// ChannelData counts only after a TURN request on the connection.
	stream = append(stream, request(allocate, id, true)...)
	stream = append(stream, want[0]...)
	stream = append(stream, want[1]...)
	stream = append(stream, want[2]...)
	for len(stream) > 0 { // write in odd pieces
		k := min(len(stream), 7)
		if _, err := c.Write(stream[:k]); err != nil {
			t.Fatal(err)
		}
		stream = stream[k:]
	}
	if m := readStream(t, c); m.TransactionID != id {
		t.Fatalf("response id %x", m.TransactionID)
	}
	h.wait(t, 4) // three frames and the request
	frames, _, last = h.snapshot()
	if len(frames) != 4 {
		t.Fatalf("%d frames", len(frames))
	}
	for i, w := range want {
		if !bytes.Equal(frames[i+1], w) {
			t.Errorf("frame %d: %d bytes, want %d", i, len(frames[i+1]), len(w))
		}
	}
	if last.Network() != "tcp" || last.RemoteAddr() != localAddr(c) || last.LocalAddr() != endpoint(t, s, "tcp", RolePrimary) {
		t.Errorf("TCP conn %v %v %v", last.Network(), last.RemoteAddr(), last.LocalAddr())
	}
	if st := s.Stats(); st.ChannelData != 4 {
		t.Errorf("ChannelData = %d, want 4", st.ChannelData)
	}
	// ConnClosed follows the client's close, with the same Conn.
	c.Close()
	h.wait(t, 1)
	if _, closed, _ := h.snapshot(); len(closed) != 1 || closed[0] != last {
		t.Errorf("ConnClosed called %d times, or with another Conn", len(closed))
	}
}

// TestConnWriteTo: a Handler sends to the client later through the Conn
// it was given, over UDP and TCP; after the TCP connection closes, WriteTo
// fails with net.ErrClosed.
func TestConnWriteTo(t *testing.T) {
	h := newRecorder()
	s := startServer(t, Config{UDP: loop4, TCP: loop4, UDPSockets: 1, Handler: h})
	u := udpClient(t, ip1)
	exchange(t, u, endpoint(t, s, "udp", RolePrimary), request(allocate, stun.NewTransactionID(), true))
	h.wait(t, 1)
	_, _, conn := h.snapshot()
	msg := turn.AppendChannelData(nil, 0x4000, []byte("later"), false)
	if err := conn.WriteTo(msg, udpLocal(u)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	u.SetReadDeadline(time.Now().Add(ioWait))
	if n, _, err := u.ReadFromUDPAddrPort(buf); err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("UDP client got %x (%v)", buf[:n], err)
	}

	c := dialTCP(t, s)
	streamExchange(t, c, request(allocate, stun.NewTransactionID(), true))
	h.wait(t, 1)
	_, _, conn = h.snapshot()
	var want []byte
	for i := range 50 {
		m := turn.AppendChannelData(nil, 0x4000, bytes.Repeat([]byte{byte(i)}, i), true)
		want = append(want, m...)
		if err := conn.WriteTo(m, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(ioWait))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("TCP client got %d bytes (%v), want the %d queued, in order", len(got), err, len(want))
	}
	c.Close()
	h.wait(t, 1)
	if err := conn.WriteTo(msg, netip.AddrPort{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after close: %v", err)
	}
}

// TestConnQueueFull: a client that does not read fills its connection's
// queue; further messages are dropped and counted, and the connection
// and the server stay usable.
func TestConnQueueFull(t *testing.T) {
	h := newRecorder()
	s := startServer(t, Config{TCP: loop4, Handler: h})
	c := dialTCP(t, s)
	streamExchange(t, c, request(allocate, stun.NewTransactionID(), true))
	h.wait(t, 1)
	_, _, conn := h.snapshot()
	big := turn.AppendChannelData(nil, 0x4000, make([]byte, 60000), true)
	full := false
	for range 4000 { // at most 240 MB: kernel buffers hold far less
		if err := conn.WriteTo(big, netip.AddrPort{}); errors.Is(err, ErrQueueFull) {
			full = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("the queue never filled")
	}
	if st := s.Stats(); st.QueueDrops != 1 {
		t.Errorf("QueueDrops = %d", st.QueueDrops)
	}
}

// TestKeepOpen checks, on a fake clock, that KeepOpen suspends the idle
// timeout and that switching it off restores it.
func TestKeepOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newRecorder()
		h.onReq = func(req *Request) { req.Conn.KeepOpen(req.Msg.Type.Method == stun.MethodAllocate) }
		s, err := Listen(Config{TCP: loop4, TCPIdleTimeout: 30 * time.Second, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cl := serveOnPipe(t, s)

		go cl.Write(request(allocate, stun.NewTransactionID(), true))
		readStream(t, cl)
		<-h.got
		time.Sleep(time.Hour) // fake time: far past the idle timeout
		refresh := stun.Type{Method: stun.MethodRefresh, Class: stun.ClassRequest}
		go cl.Write(request(refresh, stun.NewTransactionID(), true))
		readStream(t, cl) // still open
		<-h.got
		start := time.Now()
		var b [1]byte
		cl.SetReadDeadline(time.Time{})
		if _, err := cl.Read(b[:]); err == nil {
			t.Fatal("read data")
		}
		if idle := time.Since(start); idle != 30*time.Second {
			t.Errorf("closed after %v idle, want 30s once KeepOpen is off", idle)
		}
		synctest.Wait()
	})
}

// TestDetach: a Handler takes over a TCP connection after answering a
// request (as RFC 6062's ConnectionBind does); the bytes that followed the
// request are handed over, and the server forgets the connection.
func TestDetach(t *testing.T) {
	h := newRecorder()
	type taken struct {
		c    net.Conn
		rest []byte
	}
	tk := make(chan taken, 1)
	h.onReq = func(req *Request) {
		if req.Msg.Type.Method == stun.MethodConnectionBind {
			if err := req.Conn.Detach(func(c net.Conn, rest []byte) { tk <- taken{c, rest} }); err != nil {
				t.Error(err)
			}
		}
	}
	s := startServer(t, Config{TCP: loop4, UDP: loop4, UDPSockets: 1, Handler: h})
	c := dialTCP(t, s)
	id := stun.NewTransactionID()
	bind := request(stun.Type{Method: stun.MethodConnectionBind, Class: stun.ClassRequest}, id, true)
	if _, err := c.Write(append(bind, "raw application bytes"...)); err != nil {
		t.Fatal(err)
	}
	if m := readStream(t, c); m.TransactionID != id {
		t.Fatal("no response")
	}
	var got taken
	select {
	case got = <-tk:
	case <-time.After(ioWait):
		t.Fatal("not detached")
	}
	defer got.c.Close()
	rest := append([]byte(nil), got.rest...)
	for len(rest) < len("raw application bytes") {
		buf := make([]byte, 64)
		got.c.SetReadDeadline(time.Now().Add(ioWait))
		n, err := got.c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, buf[:n]...)
	}
	if string(rest) != "raw application bytes" {
		t.Errorf("handed over %q", rest)
	}
	if _, err := got.c.Write([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(ioWait))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "echo" {
		t.Fatalf("client read %q (%v)", buf, err)
	}
	waitFor(t, func() bool { return s.Stats().TCPConns == 0 })
	if _, closed, _ := h.snapshot(); len(closed) != 0 {
		t.Error("ConnClosed called for a detached connection")
	}
	// UDP cannot be detached.
	exchange(t, udpClient(t, ip1), endpoint(t, s, "udp", RolePrimary), request(allocate, stun.NewTransactionID(), true))
	h.wait(t, 2) // the ConnectionBind and this Allocate
	_, _, udpConn := h.snapshot()
	if err := udpConn.Detach(func(net.Conn, []byte) {}); !errors.Is(err, ErrNotStream) {
		t.Errorf("UDP Detach: %v", err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
}

// TestUDPConnWriteNoAllocs: sending through a UDP Conn allocates nothing.
func TestUDPConnWriteNoAllocs(t *testing.T) {
	h := newRecorder()
	s := startServer(t, Config{UDP: loop4, UDPSockets: 1, Handler: h})
	u := udpClient(t, ip1)
	exchange(t, u, endpoint(t, s, "udp", RolePrimary), request(allocate, stun.NewTransactionID(), true))
	<-h.got
	_, _, conn := h.snapshot()
	msg := make([]byte, 100)
	to := udpLocal(u)
	if n := testing.AllocsPerRun(200, func() { conn.WriteTo(msg, to) }); n != 0 {
		t.Errorf("%v allocations per WriteTo", n)
	}
}

// TestChannelDataBeforeSTUNIsGarbage: on a fresh TCP connection, bytes that
// look like a ChannelData header ("GET ") are garbage: the server closes
// the connection instead of waiting for a 21 KB frame.
func TestChannelDataBeforeSTUNIsGarbage(t *testing.T) {
	s := startServer(t, Config{TCP: loop4, Handler: newRecorder()})
	c := dialTCP(t, s)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [64]byte
	n, err := c.Read(b[:])
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, err %v: want the connection closed", n, err)
	}
}
