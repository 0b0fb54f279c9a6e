package stunclient

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Interop with coturn's turnserver, started by the test on 127.0.0.1.

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// freeLoopbackPort returns a port that is free on 127.0.0.1 for both UDP
// and TCP at the time of the call.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

// startTurnserver starts turnserver on 127.0.0.1 with args added to the
// common ones, waits until it answers Binding requests over UDP and
// accepts TCP connections, and kills it (by PID) when the test ends.
func startTurnserver(t *testing.T, args ...string) netip.AddrPort {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("turnserver (coturn) is required in CI: %v", err)
		}
		t.Skipf("turnserver (coturn) not installed: %v", err)
	}
	port := freeLoopbackPort(t)
	dir := t.TempDir()
	args = append([]string{"-n", "--no-cli", "--no-tls", "--no-dtls",
		"--listening-ip", "127.0.0.1", "-p", strconv.Itoa(port),
		"--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb")}, args...)
	cmd := exec.Command(bin, args...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("turnserver output:\n%s", out.String())
		}
	})
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))

	// Readiness: Binding requests with a short schedule, for at most 10 s.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := New(conn, Config{Retransmit: Retransmit{RTO: 50 * time.Millisecond, Rc: 2, Rm: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("turnserver exited early:\n%s", out.String())
		default:
		}
		_, err := probe.Binding(t.Context(), addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver not answering on %s: %v\n%s", addr, err, out.String())
		}
	}
	tc, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("turnserver TCP: %v", err)
	}
	tc.Close()
	return addr
}

// clients returns a UDP and a TCP Client for server.
func clients(t *testing.T, server netip.AddrPort, cfg Config) map[string]*Client {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := mustNew(t, conn, cfg)
	tc, err := net.Dial("tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStream(tc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return map[string]*Client{"udp": u, "tcp": s}
}

func TestCoturnBinding(t *testing.T) {
	checkGoroutines(t)
	srv := startTurnserver(t, "--stun-only")
	for name, c := range clients(t, srv, Config{Software: "icebreaker test", Fingerprint: true}) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			res, err := c.Binding(ctx, srv)
			if err != nil {
				t.Fatal(err)
			}
			if res.Mapped != c.LocalAddr() || res.Local != c.LocalAddr() || res.Server != srv {
				t.Errorf("result %+v, local %s", res, c.LocalAddr())
			}
			if sw, err := res.Response.Message.Software(); err != nil {
				t.Logf("no SOFTWARE: %v", err)
			} else {
				t.Logf("%s: mapped %s, rtt %v, server %q", name, res.Mapped, res.RTT, sw)
			}
		})
	}
}

// turnAttrs are the comprehension-required TURN attributes of an
// Allocate or Refresh response (RFC 8656, Section 18).
func turnAttrs(a stun.AttrType) bool {
	switch a {
	case stun.AttrXORRelayedAddress, stun.AttrLifetime, stun.AttrReservationToken:
		return true
	}
	return false
}

func requestedTransportUDP(b []byte, _ stun.TransactionID) []byte {
	return stun.AppendAttr(b, stun.AttrRequestedTransport, []byte{17, 0, 0, 0})
}

// TestCoturnLongTermCredentials exercises RFC 8489, Section 9.2 against
// coturn. coturn answers Binding without authentication, so the test
// uses the TURN Allocate method (RFC 8656), which it challenges: 401,
// then a retry with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY. The
// Refresh that deletes the allocation then reuses the cached nonce.
func TestCoturnLongTermCredentials(t *testing.T) {
	checkGoroutines(t)
	srv := startTurnserver(t, "--lt-cred-mech", "--user=u:p", "--realm=test", "--relay-ip", "127.0.0.1")
	cfg := Config{Username: "u", Password: "p", Comprehends: turnAttrs}
	for name, c := range clients(t, srv, cfg) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			resp, err := c.Do(ctx, srv, stun.MethodAllocate, requestedTransportUDP)
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			relayed, err := resp.Message.XORAddress(stun.AttrXORRelayedAddress)
			if err != nil || !resp.Authenticated {
				t.Fatalf("Allocate response: relayed %v (%v), authenticated %v", relayed, err, resp.Authenticated)
			}
			if s := c.Stats(); s.Sent < 2 {
				t.Errorf("Allocate took %d transmissions; want the challenge and the retry", s.Sent)
			}
			sent := c.Stats().Sent
			resp, err = c.Do(ctx, srv, stun.MethodRefresh, func(b []byte, _ stun.TransactionID) []byte {
				return stun.AppendUint32Attr(b, stun.AttrLifetime, 0)
			})
			if err != nil || !resp.Authenticated {
				t.Fatalf("Refresh: %v", err)
			}
			if got := c.Stats().Sent - sent; got != 1 {
				t.Errorf("Refresh took %d transmissions; the cached nonce should have been used at once", got)
			}
			t.Logf("%s: relayed %s", name, relayed)
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		c := mustNew(t, conn, Config{Comprehends: turnAttrs})
		resp, err := c.Do(t.Context(), srv, stun.MethodAllocate, requestedTransportUDP)
		if !errors.Is(err, ErrNoCredentials) || resp == nil {
			t.Fatalf("err = %v, want ErrNoCredentials", err)
		}
		realm, _ := resp.Message.Realm()
		nonce, err := resp.Message.Nonce()
		if realm != "test" || err != nil {
			t.Errorf("401 with realm %q, nonce %q (%v)", realm, nonce, err)
		}
		_, cookie := stun.NonceFeatures(nonce)
		t.Logf("coturn's 401: nonce %q (nonce cookie %v), PASSWORD-ALGORITHMS %v",
			nonce, cookie, resp.Message.Has(stun.AttrPasswordAlgorithms))
	})

	t.Run("wrong password", func(t *testing.T) {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		c := mustNew(t, conn, Config{Username: "u", Password: "wrong", Comprehends: turnAttrs})
		_, err = c.Do(t.Context(), srv, stun.MethodAllocate, requestedTransportUDP)
		if se, ok := errors.AsType[*stun.Error](err); !ok || se.Code != stun.CodeUnauthorized {
			t.Fatalf("err = %v, want a 401", err)
		}
	})
}
