package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// Credentials and realm of the test server.
const (
	turnUser   = "u"
	turnPass   = "p"
	turnRealm  = "interop.test"
	restSecret = "interop-rest-secret"
)

// testTimeout bounds each test; they normally take well under a second.
const testTimeout = 30 * time.Second

// binary is the icebreaker binary TestMain built, and buildErr why it
// could not.
var binary, buildErr = "", error(nil)

// TestMain builds the icebreaker binary of the enclosing module once, runs
// the tests, removes the binary, and checks that the tests left no
// goroutine behind.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "icebreaker-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, buildErr = build(dir)
	before := runtime.NumGoroutine()
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := testutil.SettleGoroutines(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// build runs "go build" on ../../cmd/icebreaker, in the main module.
func build(dir string) (string, error) {
	out := filepath.Join(dir, "icebreaker")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/icebreaker")
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/icebreaker in %s: %v\n%s", cmd.Dir, err, b)
	}
	return out, nil
}

// testContext returns a context bounded by testTimeout and cancelled when
// the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// server is a running `icebreaker serve`.
type server struct {
	proc     *testutil.Process
	udp, tcp netip.AddrPort
}

// listenLine matches the lines in which serve prints its listening
// endpoints, e.g. "  udp  127.0.0.1:3478".
var listenLine = regexp.MustCompile(`(?m)^\s+(udp|tcp)\s+(\S+)`)

// startServe starts `icebreaker serve` on 127.0.0.1 with free ports, the
// static user, the REST secret and the realm above, no user store, and
// extra; it waits until the server has printed its UDP and TCP addresses.
// The ICEBREAKER_* environment of the test is not passed on.
func startServe(t *testing.T, ctx context.Context, extra ...string) *server {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	args := append([]string{"serve", "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--rendezvous", "off",
		"--user", turnUser + ":" + turnPass, "--rest-secret", restSecret, "--realm", turnRealm}, extra...)
	cmd := testutil.Command(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ICEBREAKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := testutil.Start(t, cmd)
	s := &server{proc: p}
	parse := func(out string) bool {
		for _, m := range listenLine.FindAllStringSubmatch(out, -1) {
			ap, err := netip.ParseAddrPort(m[2])
			if err != nil {
				continue
			}
			if m[1] == "udp" {
				s.udp = ap
			} else {
				s.tcp = ap
			}
		}
		return s.udp.IsValid() && s.tcp.IsValid()
	}
	if err := p.WaitFor(ctx, "its listening addresses", parse); err != nil {
		t.Fatal(err)
	}
	parse(p.Output())
	t.Cleanup(func() {
		if out := p.Output(); strings.Contains(out, "panic") || strings.Contains(out, "DATA RACE") {
			t.Errorf("icebreaker serve crashed or raced:\n%s", out)
		}
	})
	return s
}

// checkAlive fails the test if the server has exited.
func (s *server) checkAlive(t *testing.T) {
	t.Helper()
	if s.proc.Exited() {
		t.Fatalf("icebreaker serve exited (%v):\n%s", s.proc.Wait(), s.proc.Output())
	}
}

// echoPeer is a UDP echo server on 127.0.0.1 that records who sent to it.
type echoPeer struct {
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	senders map[netip.AddrPort]int
}

// startEchoPeer starts an echo peer; the test's cleanup stops it and
// waits for its goroutine.
func startEchoPeer(t *testing.T) *echoPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e := &echoPeer{conn: c, done: make(chan struct{}), senders: map[netip.AddrPort]int{}}
	go e.run()
	t.Cleanup(func() {
		c.Close()
		<-e.done
	})
	return e
}

func (e *echoPeer) run() {
	defer close(e.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.mu.Lock()
		e.senders[from]++
		e.mu.Unlock()
		e.conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

func (e *echoPeer) addr() netip.AddrPort {
	return e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// from returns the senders seen so far and their datagram counts.
func (e *echoPeer) from() map[netip.AddrPort]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[netip.AddrPort]int, len(e.senders))
	for k, v := range e.senders {
		m[k] = v
	}
	return m
}
