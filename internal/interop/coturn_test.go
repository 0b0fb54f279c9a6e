package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
)

// coturn is a running coturn turnserver in STUN-only mode.
type coturn struct {
	proc *testutil.Process
	addr netip.AddrPort // UDP and TCP
}

// startCoturn starts `turnserver --stun-only` on a free loopback port and
// waits until it answers Binding requests over UDP and TCP. coturn binds
// with SO_REUSEPORT and so does not fail when the port is taken; the
// readiness check therefore also checks that the answer comes from coturn
// (its SOFTWARE attribute), and starts over on another port otherwise.
func startCoturn(t *testing.T, ctx context.Context) *coturn {
	t.Helper()
	bin := testutil.RequireBinary(t, "turnserver")
	var lastErr error
	for range 3 {
		port := testutil.FreePort(t)
		dir := t.TempDir()
		cmd := testutil.Command(ctx, bin, "-n", "--no-cli", "--no-tls", "--no-dtls",
			"--listening-ip", "127.0.0.1", "-p", strconv.Itoa(port), "--stun-only",
			"--log-file", "stdout", "--simple-log",
			// Keep its files out of /var and of each other's way.
			"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb"))
		cmd.Dir = dir
		p := testutil.Start(t, cmd)
		c := &coturn{proc: p, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		lastErr = c.ready(rctx)
		cancel()
		if lastErr == nil {
			return c
		}
		p.Kill()
		p.Wait()
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("coturn did not come up: %v", lastErr)
	return nil
}

// ready polls coturn over UDP, then TCP, until it answers as coturn.
func (c *coturn) ready(ctx context.Context) error {
	for _, network := range []string{"udp", "tcp"} {
		for {
			var m *stun.Message
			var err error
			if network == "udp" {
				m, _, err = udpBinding(ctx, c.addr)
			} else {
				m, _, err = tcpBinding(ctx, c.addr)
			}
			if err == nil {
				sw, _ := m.Software()
				if !strings.Contains(sw, "Coturn") {
					return fmt.Errorf("%s %v answered with SOFTWARE %q: not coturn", network, c.addr, sw)
				}
				break
			}
			if c.proc.Exited() {
				return fmt.Errorf("turnserver exited: %v\n%s", c.proc.Wait(), c.proc.Output())
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s %v: %w; turnserver output:\n%s", network, c.addr, err, c.proc.Output())
			}
			// A refused TCP connection returns at once: wait a little
			// before the next try, bounded by ctx.
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// stunJSON is the output of `icebreaker stun --json`.
type stunJSON struct {
	Mapped    string  `json:"mapped"`
	Local     string  `json:"local"`
	Server    string  `json:"server"`
	Transport string  `json:"transport"`
	RTTms     float64 `json:"rtt_ms"`
}

// TestStunCommandAgainstCoturn runs `icebreaker stun --json` against coturn
// over UDP and TCP. On loopback there is no NAT, so the mapped address must
// be exactly the local address the command used.
func TestStunCommandAgainstCoturn(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	c := startCoturn(t, ctx)

	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			args := []string{"stun", "--json", "--transport", transport, "--timeout", "10s", c.addr.String()}
			cmd := testutil.Command(ctx, bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("icebreaker %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
			}
			var res stunJSON
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("output is not the JSON object: %v\n%s", err, out)
			}
			mapped, err := netip.ParseAddrPort(res.Mapped)
			if err != nil {
				t.Fatalf("mapped %q: %v", res.Mapped, err)
			}
			local, err := netip.ParseAddrPort(res.Local)
			if err != nil {
				t.Fatalf("local %q: %v", res.Local, err)
			}
			if mapped.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("mapped IP %v, want 127.0.0.1", mapped.Addr())
			}
			if mapped != local || mapped.Port() == 0 {
				t.Errorf("mapped %v, local %v: want the same address (no NAT on loopback)", mapped, local)
			}
			if res.Server != c.addr.String() {
				t.Errorf("server %q, want %v", res.Server, c.addr)
			}
			if res.Transport != transport {
				t.Errorf("transport %q, want %q", res.Transport, transport)
			}
			if res.RTTms <= 0 {
				t.Errorf("rtt_ms %v, want a positive round-trip time", res.RTTms)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
		})
	}
	if c.proc.Exited() {
		t.Fatalf("turnserver exited:\n%s", c.proc.Output())
	}
}
