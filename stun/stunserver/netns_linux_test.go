//go:build linux

package stunserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenInNetns creates a network namespace of the test's own, with lo up,
// and runs Listen(cfg) inside it: the sockets stay in that namespace, so
// the server can take port 3478 without touching the host's. It returns
// the server and the namespace name; cleanup deletes the namespace.
func listenInNetns(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	ipTool := peerTool(t, "ip")
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := "ibstun-" + hex.EncodeToString(rnd[:])
	if out, err := exec.Command(ipTool, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ipTool, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command(ipTool, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}

	type result struct {
		s   *Server
		err error
	}
	res := make(chan result, 1)
	go func() {
		// This goroutine's thread enters the namespace and is never
		// unlocked, so the runtime discards the thread when it exits.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{err: err}
			return
		}
		s, err := Listen(cfg)
		res <- result{s, err}
	}()
	r := <-res
	if r.err != nil {
		t.Fatalf("listen in namespace: %v", r.err)
	}
	return r.s, ns
}

// TestInteropClassicStunClient runs Vovida's stun, an RFC 3489 client that
// always targets port 3478, in a namespace of its own against our server
// with RFC 5780 addresses 127.0.0.1 and 127.0.0.2: it must get its mapped
// address, and with no NAT in between see an open Internet.
func TestInteropClassicStunClient(t *testing.T) {
	stunTool := peerTool(t, "stun")
	ipTool := peerTool(t, "ip")
	before := countGoroutines()
	s, ns := listenInNetns(t, Config{
		UDP:           netip.MustParseAddrPort("127.0.0.1:3478"),
		AlternateIP:   ip2,
		AlternatePort: 3479,
		UDPSockets:    1,
	})
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	defer func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		checkGoroutines(t, before)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipTool, "netns", "exec", ns, stunTool, "127.0.0.1", "-v")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // its exit status is its verdict, not success
	if ctx.Err() != nil {
		t.Fatalf("stun timed out:\n%s", out.String())
	}
	text := out.String()
	t.Logf("stun 127.0.0.1 -v:\n%s", text)
	if !strings.Contains(text, "MappedAddress = 127.0.0.1:") {
		t.Errorf("stun got no mapped address:\n%s", text)
	}
	if !strings.Contains(text, "Primary: Open") {
		t.Errorf("stun did not find an open Internet:\n%s", text)
	}
	if st := s.Stats(); st.Malformed != 0 || st.ErrorResponses != 0 {
		t.Errorf("Stats after stun: %+v", st)
	}
}
