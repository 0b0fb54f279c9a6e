//go:build unix

package interop

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// Operating the built binary with real signals: SIGHUP reloads under
// load, a broken file is refused, a certificate swapped on disk is
// served to new TLS clients, SIGTERM drains.

// opsServe is an `icebreaker serve` configured by a file the test
// rewrites, with its admin socket in the test's directory.
type opsServe struct {
	proc  *testutil.Process
	file  string // the configuration file
	admin string // the admin socket
	udp   netip.AddrPort
}

// opsConfig is a configuration file for opsServe: loopback peers allowed,
// no user store, one static user u with password pass, plus extra YAML.
// The admin socket's path is ADMIN, which opsServe.write fills in.
func opsConfig(pass, extra string) string {
	return fmt.Sprintf(`listen: ["127.0.0.1:0"]
turn:
  user_db: none
  users: [{username: u, password: %q}]
  policy: {allow_peers: ["127.0.0.0/8"]}
admin: {listen: ADMIN}
rendezvous: {listen: "off"}
%s`, pass, extra)
}

var regexpTLS = regexp.MustCompile(`(?m)^\s+tls\s+(\S+)`)

func startOpsServe(t *testing.T, ctx context.Context, yaml string, args ...string) *opsServe {
	t.Helper()
	dir := t.TempDir()
	s := &opsServe{file: filepath.Join(dir, "icebreaker.yaml"), admin: filepath.Join(dir, "admin.sock")}
	s.write(t, yaml)
	cmd := testutil.Command(ctx, icebreaker(t), append([]string{"serve", "--config", s.file}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ICEBREAKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	s.proc = testutil.Start(t, cmd)
	if err := s.proc.WaitForOutput(ctx, "  admin "); err != nil {
		t.Fatal(err)
	}
	s.udp, _, _ = parseListening(s.proc.Output())
	return s
}

func (s *opsServe) write(t *testing.T, yaml string) {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "ADMIN", s.admin)
	if err := os.WriteFile(s.file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *opsServe) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(s.proc.PID(), sig); err != nil {
		t.Fatal(err)
	}
}

// waitCount waits until substr occurs n times in the output.
func (s *opsServe) waitCount(t *testing.T, ctx context.Context, substr string, n int) {
	t.Helper()
	if err := s.proc.WaitFor(ctx, fmt.Sprintf("%d× %q", n, substr), func(out string) bool {
		return strings.Count(out, substr) >= n
	}); err != nil {
		t.Fatal(err)
	}
}

// status runs `icebreaker status --json` against the server.
func (s *opsServe) status(t *testing.T, ctx context.Context) map[string]any {
	t.Helper()
	out, err := exec.CommandContext(ctx, icebreaker(t), "status", "--json", "--admin", s.admin).Output()
	if err != nil {
		t.Fatalf("icebreaker status: %v", err)
	}
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status %q: %v", out, err)
	}
	return st
}

func allocations(st map[string]any) float64 {
	turn, _ := st["turn"].(map[string]any)
	n, _ := turn["allocations"].(float64)
	return n
}

func opsAllocate(ctx context.Context, server netip.AddrPort, pass string) (*turnclient.Relay, error) {
	return turnclient.Allocate(ctx, turnclient.Config{Server: server.String(), Username: "u", Password: pass})
}

// TestServeReloadUnderLoad: an allocation relays numbered packets at a
// steady rate while the file changes the password and SIGHUP reloads it.
// Every packet arrives, the allocation count stays, the new password is
// in force and the old one is not; then a broken file is refused with its
// file, line and key, by SIGHUP and by `icebreaker reload`, and the
// server runs on with the configuration it had.
func TestServeReloadUnderLoad(t *testing.T) {
	ctx := testContext(t)
	s := startOpsServe(t, ctx, opsConfig("old", ""))
	relay, err := opsAllocate(ctx, s.udp, "old")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	const packets = 400 // at one per 2 ms: 0.8 s, with the reload in the middle
	sent := make(chan error, 1)
	go func() {
		buf := make([]byte, 100)
		for i := range packets {
			binary.BigEndian.PutUint32(buf, uint32(i))
			if _, err := relay.WriteTo(buf, peer.LocalAddr()); err != nil {
				sent <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		sent <- nil
	}()
	got := make(map[uint32]bool)
	reloaded := false
	buf := make([]byte, 200)
	for len(got) < packets {
		peer.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := peer.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if n >= 4 {
			got[binary.BigEndian.Uint32(buf)] = true
		}
		if !reloaded && len(got) == packets/4 {
			reloaded = true
			s.write(t, opsConfig("new", ""))
			s.signal(t, syscall.SIGHUP)
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("sending through the relay: %v", err)
	}
	if len(got) != packets {
		t.Errorf("peer received %d of %d packets across the reload", len(got), packets)
	}
	s.waitCount(t, ctx, "configuration reloaded", 1)
	if st := s.status(t, ctx); allocations(st) != 1 {
		t.Errorf("allocations after reload: %v, want 1", st["turn"])
	}
	if r, err := opsAllocate(ctx, s.udp, "old"); err == nil {
		r.Close()
		t.Error("the old password still allocates after the reload")
	}
	r2, err := opsAllocate(ctx, s.udp, "new")
	if err != nil {
		t.Fatalf("the new password: %v", err)
	}
	r2.Close()

	// A broken file: refused, with file, line and key; "new" still works.
	s.write(t, opsConfig("newer", "turn_typo: 1\n"))
	s.signal(t, syscall.SIGHUP)
	s.waitCount(t, ctx, "reload refused", 1)
	if out := s.proc.Output(); !strings.Contains(out, s.file+":") || !strings.Contains(out, "turn_typo") {
		t.Errorf("the refusal does not name the file, line and key:\n%s", lines(out, "reload refused"))
	}
	out, err := exec.CommandContext(ctx, icebreaker(t), "reload", "--admin", s.admin).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "turn_typo") {
		t.Errorf("icebreaker reload with a broken file: %v\n%s", err, out)
	}
	r3, err := opsAllocate(ctx, s.udp, "new")
	if err != nil {
		t.Fatalf("after a refused reload, the running password: %v", err)
	}
	r3.Close()
	if s.proc.Exited() {
		t.Fatalf("serve exited:\n%s", s.proc.Output())
	}
}

// TestServeCertSwap: new certificate files on disk (as certbot writes
// them) are served to the next TLS client without a signal, while a
// connection made before goes on with the old one.
func TestServeCertSwap(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	certFile, keyFile := testutil.SelfSignedCert(t, "old.example").WriteFiles(t, dir)
	s := startOpsServe(t, ctx, opsConfig("p", fmt.Sprintf("tls: {cert: %q, key: %q, listen: [\"127.0.0.1:0\"]}\n", certFile, keyFile)))
	m := regexpTLS.FindStringSubmatch(s.proc.Output())
	if m == nil {
		t.Fatalf("no TLS address printed:\n%s", s.proc.Output())
	}
	dial := func() (*tls.Conn, string) {
		c, err := tls.Dial("tcp", m[1], &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return c, c.ConnectionState().PeerCertificates[0].Subject.CommonName + strings.Join(c.ConnectionState().PeerCertificates[0].DNSNames, ",")
	}
	old, name := dial()
	defer old.Close()
	if !strings.Contains(name, "old.example") {
		t.Fatalf("first certificate names %q", name)
	}
	newDir := t.TempDir()
	nc, nk := testutil.SelfSignedCert(t, "new.example").WriteFiles(t, newDir)
	for _, f := range [][2]string{{nc, certFile}, {nk, keyFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	for {
		c, name := dial()
		c.Close()
		if strings.Contains(name, "new.example") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("new TLS clients still get %q", name)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The old connection still answers a Binding request.
	req, id := bindingRequest()
	old.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.Write(req); err != nil {
		t.Fatal(err)
	}
	resp, err := readStreamMessage(old)
	if err != nil || resp.TransactionID != id || resp.Type != stun.BindingSuccess {
		t.Fatalf("old connection after the swap: %v %v", resp, err)
	}
}

// TestServeDrain: SIGTERM with --drain-timeout refuses new allocations
// (508) and fails /readyz, keeps relaying for the existing allocation,
// and exits 0 once it is deleted, with its usage record written.
func TestServeDrain(t *testing.T) {
	ctx := testContext(t)
	s := startOpsServe(t, ctx, opsConfig("p", ""), "--drain-timeout", "20s")
	relay, err := opsAllocate(ctx, s.udp, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	s.signal(t, syscall.SIGTERM)
	s.waitCount(t, ctx, "new allocations are refused", 1)
	if r, err := opsAllocate(ctx, s.udp, "p"); !errors.Is(err, turnclient.ErrInsufficientCapacity) {
		if r != nil {
			r.Close()
		}
		t.Errorf("Allocate while draining: %v, want 508", err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", s.admin)
	}}}
	resp, err := hc.Get("http://admin/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %s, want 503", resp.Status)
	}
	hc.CloseIdleConnections()
	st := s.status(t, ctx)
	if st["draining"] != true || allocations(st) != 1 {
		t.Errorf("status while draining: %v", st)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("still here"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := peer.ReadFromUDP(buf); err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("relaying while draining: %q %v", buf[:n], err)
	}
	if s.proc.Exited() {
		t.Fatal("serve exited while an allocation was left")
	}
	relay.Close() // Refresh with lifetime 0: the last allocation ends
	select {
	case <-s.proc.Done():
	case <-ctx.Done():
		t.Fatalf("serve did not stop after its last allocation:\n%s", s.proc.Output())
	}
	if err := s.proc.Wait(); err != nil {
		t.Errorf("serve exited with %v, want 0", err)
	}
	out2 := s.proc.Output()
	for _, want := range []string{"turn allocation ended", "stopped"} {
		if !strings.Contains(out2, want) {
			t.Errorf("output lacks %q:\n%s", want, out2)
		}
	}
}

// TestServeSIGTERMStops: without a drain timeout SIGTERM stops the server
// at once and cleanly, exit 0, with the usage record of the allocation it
// ended; during a drain, SIGINT does the same.
func TestServeSIGTERMStops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		sigs  []syscall.Signal
		drain bool
	}{
		{"sigterm", nil, []syscall.Signal{syscall.SIGTERM}, false},
		{"sigint during a drain", []string{"--drain-timeout", "1m"}, []syscall.Signal{syscall.SIGTERM, syscall.SIGINT}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			s := startOpsServe(t, ctx, opsConfig("p", ""), tc.args...)
			relay, err := opsAllocate(ctx, s.udp, "p")
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			for _, sig := range tc.sigs {
				s.signal(t, sig)
				if sig == syscall.SIGTERM && tc.drain {
					s.waitCount(t, ctx, "new allocations are refused", 1)
				}
			}
			select {
			case <-s.proc.Done():
			case <-ctx.Done():
				t.Fatalf("serve did not stop:\n%s", s.proc.Output())
			}
			if err := s.proc.Wait(); err != nil {
				t.Errorf("exit %v, want 0", err)
			}
			out := s.proc.Output()
			if !strings.Contains(out, `msg="turn allocation ended"`) || !strings.Contains(out, `reason="server closed"`) || !strings.Contains(out, "icebreaker serve: stopped") {
				t.Errorf("no usage record or stopped line:\n%s", out)
			}
		})
	}
}
