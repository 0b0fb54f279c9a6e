package interop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TURN test credentials: a static user and a TURN REST API secret.
const (
	turnUser       = "u"
	turnPass       = "p"
	turnRESTSecret = "interop-rest-secret"
)

// turnServe is a running `icebreaker serve` with TURN, on one or more
// listen addresses.
type turnServe struct {
	proc *testutil.Process
	eps  []endpoint // what it printed, in order
}

// endpoint is one listening address printed by serve.
type endpoint struct {
	network string // "udp" or "tcp"
	addr    netip.AddrPort
}

// parseEndpoints returns every listening address serve printed.
func parseEndpoints(out string) []endpoint {
	var eps []endpoint
	for _, m := range listenLine.FindAllStringSubmatch(out, -1) {
		if ap, err := netip.ParseAddrPort(m[2]); err == nil {
			eps = append(eps, endpoint{m[1], ap})
		}
	}
	return eps
}

// startTURNServe starts `icebreaker serve` on each IP of listen with port 0,
// no user store, the static user turnUser and the REST secret
// turnRESTSecret, plus extra (policy flags and such), and waits until it
// has printed a UDP and a TCP address for every listen IP. The
// ICEBREAKER_* environment variables of the test's environment are not
// passed on, so only these flags configure it. The binary must have been
// built already (see icebreaker).
func startTURNServe(t *testing.T, ctx context.Context, listen []string, extra ...string) *turnServe {
	t.Helper()
	args := []string{"serve", "--rendezvous", "off", "--port", "0", "--user-db", "none",
		"--user", turnUser + ":" + turnPass, "--rest-secret", turnRESTSecret}
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
	args = append(args, extra...)
	cmd := testutil.Command(ctx, icebreaker(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ICEBREAKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := testutil.Start(t, cmd)
	if err := p.WaitFor(ctx, "its listening addresses", func(out string) bool {
		return len(parseEndpoints(out)) >= 2*len(listen)
	}); err != nil {
		t.Fatal(err)
	}
	s := &turnServe{proc: p, eps: parseEndpoints(p.Output())}
	t.Cleanup(func() {
		if out := p.Output(); strings.Contains(out, "panic") || strings.Contains(out, "DATA RACE") {
			t.Errorf("icebreaker serve crashed or raced:\n%s", out)
		}
	})
	return s
}

// addr returns the server's listening address for network ("udp" or
// "tcp") in the family of ip (IPv4 or IPv6).
func (s *turnServe) addr(t *testing.T, network string, ip netip.Addr) netip.AddrPort {
	t.Helper()
	for _, e := range s.eps {
		if e.network == network && e.addr.Addr().Is4() == ip.Is4() {
			return e.addr
		}
	}
	t.Fatalf("serve printed no %s address of the family of %v: %v", network, ip, s.eps)
	return netip.AddrPort{}
}

// checkAlive fails the test if the server has exited.
func (s *turnServe) checkAlive(t *testing.T) {
	t.Helper()
	if s.proc.Exited() {
		t.Fatalf("icebreaker serve exited (%v):\n%s", s.proc.Wait(), s.proc.Output())
	}
}

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.MustParseAddr("::1")
)

// requireLoopback6 ends the test (skip, or fail under CI) when ::1 cannot
// be bound here, as in a container without IPv6.
func requireLoopback6(t *testing.T) {
	t.Helper()
	if err := ipv6LoopbackErr(); err != nil {
		testutil.Unavailable(t, "no IPv6 loopback (::1) here: %v", err)
	}
}

// ipv6LoopbackErr returns why ::1 cannot be bound here, or nil.
func ipv6LoopbackErr() error {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return err
	}
	return c.Close()
}

// freeUDPPort returns a UDP port that was free on ip when it returned.
// (testutil.FreePort covers UDP and TCP on 127.0.0.1 only.)
func freeUDPPort(t *testing.T, ip netip.Addr) int {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatalf("free UDP port on %v: %v", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// peerPort returns a UDP port free on ip for turnutils_peer, below the
// kernel's ephemeral range when it can. turnutils_peer binds with
// SO_REUSEPORT, and so does `icebreaker serve` (several sockets per
// address): a port just freed, handed out again for a server's port 0 in
// a parallel test, could be shared with the peer, which would then answer
// that server's clients. Servers and relays here use ephemeral ports
// (port 0, relay range 49152-65535), so ports below both are safe.
func peerPort(t *testing.T, ip netip.Addr) int {
	t.Helper()
	lo := 32768 // Linux's default first ephemeral port
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const first = 10000
	if lo-first < 1000 {
		return freeUDPPort(t, ip)
	}
	for range 50 {
		port := first + rand.IntN(lo-first)
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err == nil {
			c.Close()
			return port
		}
	}
	return freeUDPPort(t, ip)
}

// startEchoPeer starts coturn's turnutils_peer, a UDP echo server, on ip
// and a port from peerPort, and waits until it echoes. turnutils_peer
// binds with SO_REUSEPORT and prints nothing, so only an echo tells that
// it runs; it is tried on a few ports in case it does not come up.
func startEchoPeer(t *testing.T, ctx context.Context, ip netip.Addr) netip.AddrPort {
	t.Helper()
	bin := testutil.RequireBinary(t, "turnutils_peer")
	var lastErr error
	for range 3 {
		peer := netip.AddrPortFrom(ip, uint16(peerPort(t, ip)))
		p := testutil.Start(t, testutil.Command(ctx, bin, "-L", ip.String(), "-p", strconv.Itoa(int(peer.Port()))))
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		lastErr = udpEcho(rctx, peer)
		cancel()
		if lastErr == nil {
			return peer
		}
		if p.Exited() {
			lastErr = fmt.Errorf("%w (turnutils_peer exited: %v: %s)", lastErr, p.Wait(), p.Output())
		}
		p.Kill()
		p.Wait()
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("turnutils_peer does not echo: %v", lastErr)
	return netip.AddrPort{}
}

// udpEcho sends a datagram to peer from a fresh socket until the same
// bytes come back (an echo server is up) or ctx is done.
func udpEcho(ctx context.Context, peer netip.AddrPort) error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer.Addr(), 0)))
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte("icebreaker echo probe")
	buf := make([]byte, 256)
	for {
		if _, err := c.WriteToUDPAddrPort(msg, peer); err != nil {
			return err
		}
		wait := time.Now().Add(100 * time.Millisecond)
		if d, ok := ctx.Deadline(); ok && d.Before(wait) {
			wait = d
		}
		c.SetReadDeadline(wait)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err == nil && from.Port() == peer.Port() && string(buf[:n]) == string(msg) {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// An ICMP port unreachable from an earlier probe
			// (ECONNREFUSED) returns at once: the peer is not up yet.
			// Pace the next probe.
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(wait)):
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no echo from %v: %w", peer, context.Cause(ctx))
		}
	}
}
