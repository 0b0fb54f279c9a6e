package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/cmd/icebreaker/internal/turncheck"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// startTurnCoturn starts coturn's turnserver on a free loopback port with
// long-term credentials u:p and, in this test only, loopback peers allowed.
// extra are more turnserver flags.
func startTurnCoturn(t *testing.T, extra ...string) netip.AddrPort {
	t.Helper()
	bin := testutil.RequireBinary(t, "turnserver")
	for range 3 {
		port := testutil.FreePort(t)
		dir := t.TempDir()
		cmd := testutil.Command(t.Context(), bin, "-n", "--no-cli", "--no-tls", "--no-dtls",
			"--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "-p", strconv.Itoa(port),
			"--lt-cred-mech", "--user=u:p", "--realm=test", "--allow-loopback-peers",
			"--log-file", "stdout", "--simple-log",
			"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb"))
		cmd.Args = append(cmd.Args, extra...)
		cmd.Dir = dir
		p := testutil.Start(t, cmd)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := waitCoturn(ctx, addr)
		cancel()
		if err == nil {
			return addr
		}
		t.Logf("coturn on %v not ready: %v\n%s", addr, err, p.Output())
		p.Kill()
		p.Wait()
	}
	t.Fatal("coturn did not come up")
	return netip.AddrPort{}
}

// waitCoturn polls with Binding requests until coturn answers as coturn.
func waitCoturn(ctx context.Context, addr netip.AddrPort) error {
	for {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"stun", "--json", "--timeout", "1s", "--rto", "50ms", addr.String()}, &out, &errb)
		if code == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s", errb.String())
		}
	}
}

// runTurnCmd runs `icebreaker turn args...` and checks that it leaves no
// goroutine behind.
func runTurnCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runTurnCmdContext(t, t.Context(), args...)
}

// runTurnCmdContext is runTurnCmd under ctx (Ctrl-C is ctx's end).
func runTurnCmdContext(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var code int
	checkNoLeak(t, fmt.Sprintf("turn %v", args), func() {
		code = run(ctx, append([]string{"turn"}, args...), &out, &errb)
	})
	return code, out.String(), errb.String()
}

func TestParseTurnURI(t *testing.T) {
	for _, tc := range []struct {
		in, transport, host string
		port                uint16
		bad                 bool
	}{
		{in: "turn:example.org", transport: "udp", host: "example.org", port: 3478},
		{in: "turn:example.org:3479?transport=tcp", transport: "tcp", host: "example.org", port: 3479},
		{in: "turn:[::1]:5000?transport=udp", transport: "udp", host: "::1", port: 5000},
		{in: "turns:example.org", transport: "tls", host: "example.org", port: 5349},
		{in: "turns:example.org:443?transport=tcp", transport: "tls", host: "example.org", port: 443},
		{in: "stun:example.org", bad: true},
		{in: "turn:example.org?transport=sctp", bad: true},
		{in: "example.org", bad: true},
		{in: "turn:example.org:0", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var o stunOptions
			err := parseTurnURI(tc.in, &o)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %+v", o)
				}
				return
			}
			if err != nil || o.transport != tc.transport || o.host != tc.host || o.port != tc.port {
				t.Fatalf("got %q %q %d, %v; want %q %q %d", o.transport, o.host, o.port, err, tc.transport, tc.host, tc.port)
			}
		})
	}
}

func TestTurnCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"check"},
		{"check", "turn:127.0.0.1", "--user", "u"},
		{"check", "turn:127.0.0.1", "--secret", "s", "--user", "u", "--pass", "p"},
		{"check", "turn:127.0.0.1", "--count", "0"},
		{"check", "turn:127.0.0.1", "--user", "u", "--pass", "p", "--timeout", "0s"},
		{"check", "turns:127.0.0.1", "--user", "u", "--pass", "p", "--insecure", "--ca", "x.pem"},
		{"check", "turn:127.0.0.1", "--user", "u", "--pass", "p", "--ca", "x.pem"},
		{"check", "turn:127.0.0.1?transport=tcp", "--user", "u", "--pass", "p", "--insecure"},
		{"bogus"},
	} {
		if code, _, _ := runTurnCmd(t, args...); code != 2 {
			t.Errorf("turn %q: exit %d, want 2", args, code)
		}
	}
}

func TestTurnCheckCoturn(t *testing.T) {
	t.Parallel()
	srv := startTurnCoturn(t)
	uri := "turn:" + srv.String()

	t.Run("wrong password", func(t *testing.T) {
		for _, u := range []string{uri, uri + "?transport=tcp"} {
			code, out, _ := runTurnCmd(t, "check", u, "--user", "u", "--pass", "wrong")
			if code == 0 {
				t.Errorf("%s: exit 0 with a wrong password:\n%s", u, out)
			}
			if !strings.Contains(out, "the server rejected the credentials (401)") {
				t.Errorf("%s: output does not say the credentials were rejected:\n%s", u, out)
			}
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		code, out, _ := runTurnCmd(t, "check", uri)
		if code == 0 || !strings.Contains(out, "requires credentials") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("probe policy", func(t *testing.T) {
		code, out, _ := runTurnCmd(t, "check", uri, "--user", "u", "--pass", "p", "--count", "5", "--probe-policy")
		t.Logf("\n%s", out)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(out, "WARN  relaying to 127.0.0.1 (loopback, the server's own address; a Binding request sent to its port through the relay was answered) is ALLOWED") {
			t.Errorf("loopback (allowed by --allow-loopback-peers), and coturn's relaying to its own port, not reported as allowed")
		}
		for _, name := range []string{"resolve", "reach", "authenticate", "allocate", "relay", "tcp-relay", "policy"} {
			if !strings.Contains(out, "PASS  "+name) {
				t.Errorf("step %s did not pass", name)
			}
		}
	})
	t.Run("json tcp", func(t *testing.T) {
		code, out, _ := runTurnCmd(t, "check", uri+"?transport=tcp", "--user", "u", "--pass", "p", "--count", "3", "--json")
		var rep turncheck.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if code != 0 || !rep.OK || len(rep.Steps) != 6 {
			t.Fatalf("exit %d, report %+v", code, rep)
		}
		checkTCPRelayStep(t, rep)
	})
	t.Run("no tcp", func(t *testing.T) {
		code, out, _ := runTurnCmd(t, "check", uri, "--user", "u", "--pass", "p", "--count", "3", "--no-tcp")
		if code != 0 || strings.Contains(out, "tcp-relay") {
			t.Errorf("exit %d, tcp-relay step despite --no-tcp:\n%s", code, out)
		}
	})
	t.Run("no reply", func(t *testing.T) {
		// A port where nothing answers: reach fails with "no reply".
		port := testutil.FreePort(t)
		code, out, _ := runTurnCmd(t, "check", fmt.Sprintf("turn:127.0.0.1:%d", port), "--timeout", "300ms", "--user", "u", "--pass", "p")
		if code == 0 || !strings.Contains(out, "FAIL  reach") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// checkTCPRelayStep checks that the report has a passed, not skipped,
// tcp-relay step.
func checkTCPRelayStep(t *testing.T, rep turncheck.Report) {
	t.Helper()
	for _, s := range rep.Steps {
		if s.Name == "tcp-relay" {
			if !s.OK || s.Skipped || !strings.Contains(s.Detail, " messages echoed") {
				t.Errorf("tcp-relay step: %+v", s)
			}
			return
		}
	}
	t.Errorf("no tcp-relay step in %+v", rep.Steps)
}

// TestTurnCheckCoturnNoTCPRelay: a server refusing TCP allocations (442)
// makes the tcp-relay step skipped, which is no failure.
func TestTurnCheckCoturnNoTCPRelay(t *testing.T) {
	t.Parallel()
	srv := startTurnCoturn(t, "--no-tcp-relay")
	uri := "turn:" + srv.String()
	code, out, _ := runTurnCmd(t, "check", uri, "--user", "u", "--pass", "p", "--count", "3")
	t.Logf("\n%s", out)
	if code != 0 || !strings.Contains(out, "SKIP  tcp-relay") || !strings.Contains(out, "server does not offer TCP allocations (442)") {
		t.Errorf("exit %d, want 0 and a skipped tcp-relay step", code)
	}
	code, out, _ = runTurnCmd(t, "check", uri+"?transport=tcp", "--user", "u", "--pass", "p", "--count", "3", "--json")
	var rep turncheck.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if code != 0 || !rep.OK || last.Name != "tcp-relay" || !last.OK || !last.Skipped {
		t.Errorf("exit %d, report %+v", code, rep)
	}
}

// TestTurnCheckOurServer runs every step against our own server, over TCP
// (whose port the server picks apart from the UDP one) and UDP with
// --no-tcp.
func TestTurnCheckOurServer(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "u:p", "--allow-peer", "127.0.0.0/8", "--user-db", "none")
	tcp := r.endpoint(t, "tcp")
	udp := r.endpoint(t, "udp")
	// A first check starts the server's relay pollers, which stay: the
	// goroutine count of runTurnCmd starts after it. startServe checks
	// that the server leaves nothing behind when it stops.
	var warm bytes.Buffer
	if code := run(t.Context(), []string{"turn", "check", "turn:" + tcp.String() + "?transport=tcp", "--user", "u", "--pass", "p", "--count", "1"}, &warm, &warm); code != 0 {
		t.Fatalf("first check: exit %d\n%s", code, warm.String())
	}

	code, out, _ := runTurnCmd(t, "check", "turn:"+tcp.String()+"?transport=tcp", "--user", "u", "--pass", "p", "--count", "3")
	t.Logf("\n%s", out)
	for _, name := range []string{"resolve", "reach", "authenticate", "allocate", "relay", "tcp-relay"} {
		if !strings.Contains(out, "PASS  "+name) {
			t.Errorf("step %s did not pass", name)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}

	code, out, _ = runTurnCmd(t, "check", "turn:"+tcp.String()+"?transport=tcp", "--user", "u", "--pass", "p", "--count", "3", "--json")
	var rep turncheck.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != 0 || !rep.OK || len(rep.Steps) != 6 {
		t.Errorf("exit %d, report %+v", code, rep)
	}
	checkTCPRelayStep(t, rep)

	code, out, _ = runTurnCmd(t, "check", "turn:"+udp.String(), "--user", "u", "--pass", "p", "--count", "3", "--no-tcp", "--json")
	rep = turncheck.Report{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != 0 || !rep.OK || len(rep.Steps) != 5 {
		t.Errorf("udp --no-tcp: exit %d, report %+v", code, rep)
	}

	// Over UDP the tcp-relay step dials TCP on the UDP port, where this
	// server (TCP on another port) has no listener: skipped, no failure.
	code, out, _ = runTurnCmd(t, "check", "turn:"+udp.String(), "--user", "u", "--pass", "p", "--count", "3")
	t.Logf("\n%s", out)
	if code != 0 || !strings.Contains(out, "  tcp-relay ") {
		t.Errorf("udp: exit %d", code)
	}
	if tcp.Port() != udp.Port() && !strings.Contains(out, "SKIP  tcp-relay") {
		t.Errorf("udp: tcp-relay step not skipped without a TCP listener on the UDP port")
	}
}
