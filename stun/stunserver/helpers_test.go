package stunserver

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

// The tests of this package start servers one after another, never in
// parallel, so that startServer can check that each server leaves no
// goroutine behind by counting them.

var (
	loop4  = netip.MustParseAddrPort("127.0.0.1:0")
	ip1    = netip.MustParseAddr("127.0.0.1")
	ip2    = netip.MustParseAddr("127.0.0.2")
	ioWait = 5 * time.Second // bound on every wait for a packet that must come
)

// startServer listens with cfg, serves it, and registers a cleanup that
// closes it, checks that Serve returned nil and that no goroutine is left.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	before := runtime.NumGoroutine()
	s, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	select {
	case <-s.started:
	case <-time.After(ioWait):
		t.Fatal("Serve did not start")
	}
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(ioWait):
			t.Error("Serve did not return after Close")
		}
		checkGoroutines(t, before)
	})
	return s
}

// checkGoroutines waits, boundedly, for the goroutine count to fall back
// to before.
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines left, %d before the server:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond) // polling a count, not synchronising
	}
}

// endpoint returns the address of the server's endpoint of network and role.
func endpoint(t testing.TB, s *Server, network, role string) netip.AddrPort {
	t.Helper()
	for _, e := range s.Addrs() {
		if e.Network == network && e.Role == role {
			return e.Addr
		}
	}
	t.Fatalf("no %s endpoint with role %s in %v", network, role, s.Addrs())
	return netip.AddrPort{}
}

func udpClient(t testing.TB, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func localAddr(c net.Conn) netip.AddrPort { return netx.AddrPort(c.LocalAddr()) }

func udpLocal(c *net.UDPConn) netip.AddrPort { return netx.AddrPort(c.LocalAddr()) }

// request builds a Binding request (or another type) with the given
// attributes and, if fp, a FINGERPRINT.
func request(t stun.Type, id stun.TransactionID, fp bool, attrs ...attr) []byte {
	b := stun.AppendHeader(nil, t, id)
	for _, a := range attrs {
		b = stun.AppendAttr(b, a.t, a.v)
	}
	if fp {
		b = stun.AppendFingerprint(b)
	}
	return b
}

type attr struct {
	t stun.AttrType
	v []byte
}

func changeRequest(flags uint32) attr {
	return attr{stun.AttrChangeRequest, []byte{0, 0, 0, byte(flags)}}
}

func responsePort(p uint16) attr {
	return attr{stun.AttrResponsePort, []byte{byte(p >> 8), byte(p), 0, 0}}
}

// exchange sends req to the server at to and reads one datagram.
func exchange(t testing.TB, c *net.UDPConn, to netip.AddrPort, req []byte) (*stun.Message, netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(req, to); err != nil {
		t.Fatal(err)
	}
	return readMsg(t, c)
}

func readMsg(t testing.TB, c *net.UDPConn) (*stun.Message, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(ioWait))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	var m stun.Message
	if err := m.Parse(buf[:n]); err != nil {
		t.Fatalf("response does not parse: %v", err)
	}
	return &m, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

// checkSuccess checks a success response to a modern request: the
// transaction ID, XOR-MAPPED-ADDRESS = mapped, and a valid FINGERPRINT.
func checkSuccess(t testing.TB, m *stun.Message, id stun.TransactionID, mapped netip.AddrPort) {
	t.Helper()
	if m.Type != stun.BindingSuccess {
		code, reason, _ := m.ErrorCode()
		t.Fatalf("response type %v (%d %s), want Binding success", m.Type, code, reason)
	}
	if m.TransactionID != id || m.Classic {
		t.Errorf("transaction ID %x classic=%v, want %x", m.TransactionID, m.Classic, id)
	}
	got, err := m.XORMappedAddress()
	if err != nil || got != mapped {
		t.Errorf("XOR-MAPPED-ADDRESS = %v, %v; want %v", got, err, mapped)
	}
	if err := m.CheckFingerprint(); err != nil {
		t.Errorf("FINGERPRINT: %v", err)
	}
}

// checkError checks an error response's code and, for 420, its
// UNKNOWN-ATTRIBUTES.
func checkError(t testing.TB, m *stun.Message, id stun.TransactionID, code int, unknown ...stun.AttrType) {
	t.Helper()
	if m.Type.Class != stun.ClassError || m.TransactionID != id {
		t.Fatalf("response %v id %x, want error response to %x", m.Type, m.TransactionID, id)
	}
	got, reason, err := m.ErrorCode()
	if err != nil || got != code {
		t.Fatalf("ERROR-CODE %d %q (%v), want %d", got, reason, err, code)
	}
	if len(unknown) > 0 {
		v, _ := m.Get(stun.AttrUnknownAttributes)
		list, err := stun.ParseUnknownAttributes(nil, v)
		if err != nil || !sameAttrs(list, unknown) {
			t.Errorf("UNKNOWN-ATTRIBUTES %v (%v), want %v", list, err, unknown)
		}
	}
	if !m.Classic {
		if err := m.CheckFingerprint(); err != nil {
			t.Errorf("FINGERPRINT: %v", err)
		}
	}
}

func sameAttrs(a, b []stun.AttrType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// selfSignedTLS returns a server config with a fresh self-signed
// certificate for 127.0.0.1, and a client config that trusts it.
func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	c := testutil.SelfSignedCert(t)
	return c.Server, c.Client
}

// streamExchange writes req on a stream and reads one framed STUN message.
func streamExchange(t testing.TB, c net.Conn, req []byte) *stun.Message {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	return readStream(t, c)
}

func readStream(t testing.TB, c net.Conn) *stun.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioWait))
	hdr := make([]byte, stun.HeaderSize)
	if _, err := readFull(c, hdr); err != nil {
		t.Fatalf("reading response header: %v", err)
	}
	n, err := stun.MessageLength(hdr)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	copy(b, hdr)
	if _, err := readFull(c, b[stun.HeaderSize:]); err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	var m stun.Message
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	return &m
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// waitClosed reads from c until the peer closes it, and fails if it does
// not within ioWait or sends something.
func waitClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioWait))
	var buf [64]byte
	n, err := c.Read(buf[:])
	if err == nil {
		t.Fatalf("connection still open; read %q", buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed by the server")
	}
}

func countGoroutines() int { return runtime.NumGoroutine() }
