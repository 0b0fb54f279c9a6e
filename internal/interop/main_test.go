package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
)

const icebreakerPkg = "github.com/icebreaker-net/icebreaker/cmd/icebreaker"

// testTimeout bounds each test; the tests normally take well under a second
// each.
const testTimeout = 30 * time.Second

// TestMain removes the built binary and checks that the tests left no
// goroutine behind (the goroutines that wait for peer processes and copy
// their output).
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	natlab.Cleanup()
	if code == 0 {
		if err := testutil.SettleGoroutines(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// testContext returns a context bounded by testTimeout and cancelled when
// the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// icebreaker returns the path of the icebreaker binary, built once per run.
// Tests call it before testContext: a cold build can take a while.
func icebreaker(t *testing.T) string {
	t.Helper()
	return natlab.BuildBinary(t, icebreakerPkg)
}

// server is a running `icebreaker serve`.
type server struct {
	proc     *testutil.Process
	udp, tcp netip.AddrPort // the addresses it printed
}

// listenLine matches the lines in which `icebreaker serve` prints its
// listening endpoints, e.g. "  udp  127.0.0.1:3478".
var listenLine = regexp.MustCompile(`(?m)^\s+(udp|tcp)\s+(\S+)`)

// parseListening returns the UDP and TCP addresses printed by serve, and
// whether both are there.
func parseListening(out string) (udp, tcp netip.AddrPort, ok bool) {
	for _, m := range listenLine.FindAllStringSubmatch(out, -1) {
		ap, err := netip.ParseAddrPort(m[2])
		if err != nil {
			continue
		}
		switch m[1] {
		case "udp":
			udp = ap
		case "tcp":
			tcp = ap
		}
	}
	return udp, tcp, udp.IsValid() && tcp.IsValid()
}

// startServe starts `icebreaker serve` with args, through prefix (e.g. "ip
// netns exec NS") when it is not empty, and waits until it has printed its
// UDP and TCP addresses. The binary must have been built already (see
// icebreaker), so that building does not eat into ctx.
func startServe(t *testing.T, ctx context.Context, prefix []string, args ...string) *server {
	t.Helper()
	// The rendezvous' fixed default ports would clash between parallel
	// tests; a test that wants it passes its own --rendezvous after these.
	argv := append(append(append([]string(nil), prefix...), icebreaker(t), "serve", "--rendezvous", "off"), args...)
	p := testutil.Start(t, testutil.Command(ctx, argv[0], argv[1:]...))
	if err := p.WaitFor(ctx, "its listening addresses", func(out string) bool {
		_, _, ok := parseListening(out)
		return ok
	}); err != nil {
		t.Fatal(err)
	}
	s := &server{proc: p}
	s.udp, s.tcp, _ = parseListening(p.Output())
	return s
}

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it in the test's cleanup. It needs root and ip (iproute2).
func newNetNS(t *testing.T, ctx context.Context) string {
	t.Helper()
	testutil.RequireRoot(t)
	ip := testutil.RequireBinary(t, "ip")
	var b [4]byte
	rand.Read(b[:])
	ns := fmt.Sprintf("ib-interop-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	if out, err := testutil.Command(ctx, ip, "netns", "add", ns).CombinedOutput(); err != nil {
		testutil.Unavailable(t, "cannot create a network namespace: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Not ctx: it may be done by now, and the namespace must go.
		if out, err := testutil.Command(context.Background(), ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	if out, err := testutil.Command(ctx, ip, "netns", "exec", ns, ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip netns exec %s ip link set lo up: %v: %s", ns, err, out)
	}
	return ns
}

// bindingRequest returns a Binding request with FINGERPRINT and its ID.
func bindingRequest() ([]byte, stun.TransactionID) {
	id := stun.NewTransactionID()
	return stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, id)), id
}

// udpBinding sends a Binding request to server from a fresh loopback socket,
// retransmitting (RFC 8489, Section 6.2.1, with a short RTO) until a
// response arrives or ctx is done, and returns the parsed response and the
// socket's local address.
func udpBinding(ctx context.Context, server netip.AddrPort) (*stun.Message, netip.AddrPort, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	req, id := bindingRequest()
	buf := make([]byte, 2048)
	rto := 50 * time.Millisecond
	for {
		if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
			return nil, local, err
		}
		wait := time.Now().Add(rto)
		if d, ok := ctx.Deadline(); ok && d.Before(wait) {
			wait = d
		}
		c.SetReadDeadline(wait)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					return nil, local, err
				}
				break
			}
			m := new(stun.Message)
			if m.Parse(buf[:n]) == nil && m.TransactionID == id {
				return m, local, nil
			}
		}
		if ctx.Err() != nil {
			return nil, local, fmt.Errorf("no Binding response from %v over UDP: %w", server, context.Cause(ctx))
		}
		rto = min(2*rto, time.Second)
	}
}

// tcpBindingOn sends a Binding request on an open stream and returns the
// response, framed by its length field (RFC 8489, Section 6.2.2).
func tcpBindingOn(ctx context.Context, c net.Conn) (*stun.Message, error) {
	req, id := bindingRequest()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	m, err := readStreamMessage(c)
	if err != nil {
		return nil, err
	}
	if m.TransactionID != id {
		return nil, fmt.Errorf("response has transaction ID %x, want %x", m.TransactionID, id)
	}
	return m, nil
}

// readStreamMessage reads one STUN message from a stream.
func readStreamMessage(c net.Conn) (*stun.Message, error) {
	hdr := make([]byte, stun.HeaderSize)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, err
	}
	n, err := stun.MessageLength(hdr)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	copy(b, hdr)
	if _, err := io.ReadFull(c, b[stun.HeaderSize:]); err != nil {
		return nil, err
	}
	m := new(stun.Message)
	if err := m.Parse(b); err != nil {
		return nil, err
	}
	return m, nil
}

// tcpBinding dials server and runs one Binding transaction on a new
// connection. It returns the response and the connection's local address.
func tcpBinding(ctx context.Context, server netip.AddrPort) (*stun.Message, netip.AddrPort, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", server.String())
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	m, err := tcpBindingOn(ctx, c)
	return m, local, err
}

// checkReflexive checks that m is a Binding success response whose
// reflexive address is want.
func checkReflexive(t *testing.T, what string, m *stun.Message, want netip.AddrPort) {
	t.Helper()
	if m.Type != stun.BindingSuccess {
		t.Fatalf("%s: got %v, want %v", what, m.Type, stun.BindingSuccess)
	}
	got, err := m.ReflexiveAddress()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got := netip.AddrPortFrom(got.Addr().Unmap(), got.Port()); got != want {
		t.Fatalf("%s: reflexive address %v, want %v", what, got, want)
	}
}

// lines returns the lines of out that contain substr, for messages.
func lines(out, substr string) string {
	var keep []string
	for l := range strings.Lines(out) {
		if strings.Contains(l, substr) {
			keep = append(keep, strings.TrimRight(l, "\n"))
		}
	}
	return strings.Join(keep, "\n")
}
