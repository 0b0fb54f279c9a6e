// Package refpeers starts the reference magic-wormhole peers for tests, on
// loopback and free ports, stopped by PID when the test ends: the Python
// mailbox server (python3-magic-wormhole-mailbox-server) and transit relay
// (magic-wormhole-transit-relay). It also runs a whole exchange of this
// module's client against any mailbox URL (ClientPair) and asks any
// mailbox server for ICE servers (ICEServers), which a test of another
// mailbox server can reuse. StartSharedMailbox and StartSharedTransitRelay
// start one peer for a whole test binary, from TestMain.
package refpeers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// Python is the interpreter that sees Debian's Python modules.
const Python = "/usr/bin/python3"

// startTimeout bounds how long a reference server may take to listen.
const startTimeout = 20 * time.Second

// RequirePythonModule makes the test unavailable (testutil.Unavailable)
// unless Python can import module.
func RequirePythonModule(t testing.TB, module string) {
	t.Helper()
	testutil.RequireBinary(t, Python)
	if err := exec.Command(Python, "-c", "import "+module).Run(); err != nil {
		testutil.Unavailable(t, "python module %s is not installed (%v); run scripts/install-test-deps.sh", module, err)
	}
}

// Mailbox is a running reference mailbox server.
type Mailbox struct {
	// URL is its WebSocket URL, ws://127.0.0.1:PORT/v1.
	URL  string
	Proc *testutil.Process
	// DB is its channel database: a server started again with it
	// (Restart) keeps its nameplates and mailboxes.
	DB    string
	port  int
	extra []string
}

// StartMailbox starts the reference mailbox server for the test, with
// extra arguments for it (e.g. "--signal-error=MESSAGE").
func StartMailbox(t testing.TB, extra ...string) *Mailbox {
	t.Helper()
	RequirePythonModule(t, "wormhole_mailbox_server")
	m := &Mailbox{DB: filepath.Join(t.TempDir(), "relay.sqlite"), extra: extra}
	for range 5 {
		m.port = testutil.FreePort(t)
		if m.start(t) {
			return m
		}
	}
	t.Fatalf("refpeers: the mailbox server did not start; last output:\n%s", m.Proc.Output())
	return nil
}

// StartSharedMailbox starts a reference mailbox server for a whole test
// binary, from TestMain (where there is no testing.TB): the tests that do not
// restart or kill their server can share it. stop kills it by PID and removes
// its database. err says why it could not start (Python or the module
// missing included); the tests that need it then report it.
func StartSharedMailbox() (m *Mailbox, stop func(), err error) {
	port, dir, stop, err := startDetached("wormhole_mailbox_server", func(port int, dir string) []string {
		return []string{"wormhole-mailbox", "--channel-db=" + filepath.Join(dir, "relay.sqlite"),
			fmt.Sprintf("--port=tcp:%d:interface=127.0.0.1", port)}
	})
	if err != nil {
		return nil, nil, err
	}
	return &Mailbox{URL: fmt.Sprintf("ws://127.0.0.1:%d/v1", port), DB: filepath.Join(dir, "relay.sqlite"), port: port}, stop, nil
}

// StartSharedTransitRelay is StartSharedMailbox for the transit relay.
func StartSharedTransitRelay() (r *TransitRelay, stop func(), err error) {
	port, _, stop, err := startDetached("wormhole_transit_relay", func(port int, _ string) []string {
		return []string{"transitrelay", fmt.Sprintf("--port=tcp:%d:interface=127.0.0.1", port)}
	})
	if err != nil {
		return nil, nil, err
	}
	return &TransitRelay{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, stop, nil
}

// startDetached starts `python3 -m twisted ARGS...` (args made for a free
// port and a fresh directory) outside any test, waits until it listens, and
// returns a stop func that kills it by PID and removes the directory.
func startDetached(module string, args func(port int, dir string) []string) (int, string, func(), error) {
	if err := exec.Command(Python, "-c", "import "+module).Run(); err != nil {
		return 0, "", nil, fmt.Errorf("refpeers: python module %s is not usable (%v); run scripts/install-test-deps.sh", module, err)
	}
	dir, err := os.MkdirTemp("", "refpeers-")
	if err != nil {
		return 0, "", nil, err
	}
	for range 5 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			return 0, "", nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cmd := testutil.Command(ctx, Python, append([]string{"-m", "twisted"}, args(port, dir)...)...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			cancel()
			os.RemoveAll(dir)
			return 0, "", nil, err
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		kill := func() { cancel(); <-exited } // Command's Cancel kills the process group
		if waitPort(port, exited) {
			return port, dir, func() { kill(); os.RemoveAll(dir) }, nil
		}
		kill() // the port was taken: try another
	}
	os.RemoveAll(dir)
	return 0, "", nil, fmt.Errorf("refpeers: %s did not start", module)
}

// Restart kills the server and starts it again on the same port with the
// same database, as an operator restarting it would.
func (m *Mailbox) Restart(t testing.TB) {
	t.Helper()
	m.Proc.Kill()
	_ = m.Proc.Wait()
	if !m.start(t) {
		t.Fatalf("refpeers: the mailbox server did not restart:\n%s", m.Proc.Output())
	}
}

func (m *Mailbox) start(t testing.TB) bool {
	t.Helper()
	args := append([]string{"-m", "twisted", "wormhole-mailbox",
		"--channel-db=" + m.DB, fmt.Sprintf("--port=tcp:%d:interface=127.0.0.1", m.port)}, m.extra...)
	cmd := testutil.Command(context.Background(), Python, args...)
	cmd.Dir = filepath.Dir(m.DB)
	m.Proc = testutil.Start(t, cmd)
	m.URL = fmt.Sprintf("ws://127.0.0.1:%d/v1", m.port)
	return waitListening(m.Proc, m.port)
}

// TransitRelay is a running reference transit relay.
type TransitRelay struct {
	// Addr is its TCP address, 127.0.0.1:PORT.
	Addr string
	Proc *testutil.Process
}

// StartTransitRelay starts the reference transit relay for the test.
func StartTransitRelay(t testing.TB) *TransitRelay {
	t.Helper()
	RequirePythonModule(t, "wormhole_transit_relay")
	var p *testutil.Process
	for range 5 {
		port := testutil.FreePort(t)
		cmd := testutil.Command(context.Background(), Python, "-m", "twisted", "transitrelay",
			fmt.Sprintf("--port=tcp:%d:interface=127.0.0.1", port))
		cmd.Dir = t.TempDir()
		p = testutil.Start(t, cmd)
		if waitListening(p, port) {
			return &TransitRelay{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Proc: p}
		}
	}
	t.Fatalf("refpeers: the transit relay did not start; last output:\n%s", p.Output())
	return nil
}

// waitListening waits until something accepts TCP connections on port, or
// the process exits (false: the port was taken, try another).
func waitListening(p *testutil.Process, port int) bool {
	return waitPort(port, p.Done())
}

// waitPort waits until something accepts TCP connections on port, or
// exited is closed.
func waitPort(port int, exited <-chan struct{}) bool {
	deadline := time.Now().Add(startTimeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
