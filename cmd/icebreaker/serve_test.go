package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
)

// serveBuffer is an io.Writer safe for concurrent use that tells waiters
// when it grows.
type serveBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // capacity 1
}

func newServeBuffer() *serveBuffer { return &serveBuffer{changed: make(chan struct{}, 1)} }

func (s *serveBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	n, err := s.b.Write(p)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (s *serveBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveRun is an `icebreaker serve` running in a goroutine.
type serveRun struct {
	out, errb *serveBuffer
	cancel    context.CancelFunc
	done      chan int // receives run's exit status
	code      int
	exited    bool
	leaked    []string // goroutines run left behind; set before done is sent
}

const serveTimeout = 10 * time.Second

// serveArgs returns the command line of `icebreaker serve args...`, with
// the rendezvous off unless args configure it: its default ports 4000 and
// 4001 are fixed, and tests run in parallel.
// A configuration file configures it only if it has a rendezvous section.
func serveArgs(args []string) []string {
	for i, a := range args {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "rendezvous") {
			return append([]string{"serve"}, args...)
		}
		if a == "--config" && i+1 < len(args) {
			if b, err := os.ReadFile(args[i+1]); err == nil && strings.Contains(string(b), "rendezvous:") {
				return append([]string{"serve"}, args...)
			}
		}
	}
	return append([]string{"serve", "--rendezvous", "off"}, args...)
}

// startServe runs `icebreaker serve args...` until the test stops it (or
// until cleanup, which also checks that serve left no goroutine behind).
func startServe(t *testing.T, args ...string) *serveRun {
	t.Helper()
	isolateUserStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &serveRun{out: newServeBuffer(), errb: newServeBuffer(), cancel: cancel, done: make(chan int, 1)}
	go func() {
		var code int
		// The check runs on this goroutine, the one that runs serve;
		// the cleanup reports on the test's.
		r.leaked = leaksOf(func() { code = run(ctx, serveArgs(args), r.out, r.errb) })
		r.done <- code
	}()
	t.Cleanup(func() {
		r.stop(t)
		reportLeaks(t, fmt.Sprintf("serve %q", args), r.leaked)
	})
	return r
}

// stop cancels the context, as main does on SIGINT or SIGTERM, and returns
// the exit status.
func (r *serveRun) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	r.wait(t)
	return r.code
}

func (r *serveRun) wait(t *testing.T) {
	t.Helper()
	if r.exited {
		return
	}
	select {
	case r.code = <-r.done:
		r.exited = true
	case <-time.After(serveTimeout):
		t.Fatalf("serve did not return within %v\nstdout:\n%s\nstderr:\n%s", serveTimeout, r.out, r.errb)
	}
}

// waitFor waits until stdout matches re and returns the submatches.
func (r *serveRun) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(serveTimeout)
	for {
		if m := re.FindStringSubmatch(r.out.String()); m != nil {
			return m
		}
		select {
		case <-r.out.changed:
		case code := <-r.done:
			r.code, r.exited = code, true
			t.Fatalf("serve exited with %d before printing %v\nstdout:\n%s\nstderr:\n%s", code, re, r.out, r.errb)
		case <-deadline:
			t.Fatalf("serve did not print %v within %v\nstdout:\n%s\nstderr:\n%s", re, serveTimeout, r.out, r.errb)
		}
	}
}

// endpoint waits for the line of network (udp, tcp, tls) and returns its
// address.
func (r *serveRun) endpoint(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	m := r.waitFor(t, regexp.MustCompile(`(?m)^  `+network+` +(\S+)`))
	ap, err := netip.ParseAddrPort(m[1])
	if err != nil {
		t.Fatalf("printed %s address %q: %v", network, m[1], err)
	}
	return ap
}

// isolateUserStore points the default user store of the servers a test
// starts at an empty directory of its own, so that no test reads or
// creates the user store of the machine it runs on.
func isolateUserStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("ICEBREAKER_DATA_DIR", dir)
	return dir
}

// runServeOnce runs `icebreaker serve args...` expecting it to exit by
// itself (an error), and returns the status, stdout and stderr.
func runServeOnce(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	isolateUserStore(t)
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
	defer cancel()
	var code int
	checkNoLeak(t, fmt.Sprintf("serve %q", args), func() {
		code = run(ctx, serveArgs(args), &out, &errb)
	})
	if ctx.Err() != nil {
		t.Fatalf("serve %v ran until the timeout; stdout:\n%s", args, out.String())
	}
	return code, out.String(), errb.String()
}

// bindingRequest returns a Binding request with FINGERPRINT.
func bindingRequest() ([]byte, stun.TransactionID) {
	id := stun.NewTransactionID()
	b := stun.AppendHeader(nil, stun.BindingRequest, id)
	return stun.AppendFingerprint(b), id
}

// checkBindingResponse checks that resp answers id and reflects local.
func checkBindingResponse(t *testing.T, resp []byte, id stun.TransactionID, local netip.AddrPort) *stun.Message {
	t.Helper()
	var m stun.Message
	if err := m.Parse(resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	if m.Type != stun.BindingSuccess || m.TransactionID != id {
		t.Fatalf("response is %v with ID %x, want Binding success with ID %x", m.Type, m.TransactionID, id)
	}
	got, err := m.XORMappedAddress()
	if err != nil {
		t.Fatalf("XOR-MAPPED-ADDRESS: %v", err)
	}
	if got != local {
		t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", got, local)
	}
	return &m
}

// udpBinding sends a Binding request over UDP to server.
func udpBinding(t *testing.T, server netip.AddrPort) *stun.Message {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, id := bindingRequest()
	buf := make([]byte, 1500)
	// Loopback does not lose packets, but retry a few times anyway so a
	// busy CI machine cannot turn a dropped datagram into a failure.
	for range 5 {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		local := c.LocalAddr().(*net.UDPAddr).AddrPort()
		return checkBindingResponse(t, buf[:n], id, netip.AddrPortFrom(local.Addr().Unmap(), local.Port()))
	}
	t.Fatalf("no Binding response from %v over UDP", server)
	return nil
}

// streamBinding sends a Binding request over a TCP or TLS connection.
func streamBinding(t *testing.T, c net.Conn) *stun.Message {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(serveTimeout))
	req, id := bindingRequest()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, stun.HeaderSize)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("reading response header: %v", err)
	}
	resp := make([]byte, stun.HeaderSize+int(binary.BigEndian.Uint16(hdr[2:4])))
	copy(resp, hdr)
	if _, err := io.ReadFull(c, resp[stun.HeaderSize:]); err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	return checkBindingResponse(t, resp, id, netip.AddrPortFrom(local.Addr().Unmap(), local.Port()))
}

func TestServeBinding(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--software", "icebreaker-test", "--udp-sockets", "2")
	udp := r.endpoint(t, "udp")
	tcp := r.endpoint(t, "tcp")
	if udp.Port() == 0 || tcp.Port() == 0 {
		t.Fatalf("printed port 0: udp %v tcp %v", udp, tcp)
	}
	if strings.Contains(r.out.String(), "tls") {
		t.Errorf("TLS listed without a certificate:\n%s", r.out)
	}

	m := udpBinding(t, udp)
	if sw, err := m.Software(); err != nil || sw != "icebreaker-test" {
		t.Errorf("SOFTWARE = %q, %v; want icebreaker-test", sw, err)
	}
	c, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	streamBinding(t, c)

	if code := r.stop(t); code != 0 {
		t.Fatalf("exit status %d after cancel, want 0; stderr:\n%s", code, r.errb)
	}
	if !strings.HasSuffix(r.out.String(), "icebreaker serve: stopped\n") {
		t.Errorf("stdout does not end with the stop line:\n%s", r.out)
	}
	if !strings.Contains(r.errb.String(), "stun server listening") {
		t.Errorf("no start log on stderr:\n%s", r.errb)
	}
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := writeTestCert(t)
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--tls-port", "0",
		"--tls-cert", certFile, "--tls-key", keyFile, "--log-format", "json")
	addr := r.endpoint(t, "tls")
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	streamBinding(t, c)
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, r.errb)
	}
	if !strings.HasPrefix(r.errb.String(), "{") {
		t.Errorf("--log-format json did not give JSON logs:\n%s", r.errb)
	}
}

// writeTestCert writes a self-signed certificate for localhost and
// 127.0.0.1 and returns the files and a pool trusting it.
func writeTestCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	c := testutil.SelfSignedCert(t, "localhost", "127.0.0.1")
	certFile, keyFile = c.WriteFiles(t, t.TempDir())
	return certFile, keyFile, c.Pool
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServeFlagOverridesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "icebreaker.yaml")
	// The file's port 3478 and software must lose to the flags; its tcp:
	// false must stay.
	writeFile(t, file, "listen: [\"127.0.0.1:3478\"]\ntcp:\n  enabled: false\nstun:\n  software: from-file\n")
	r := startServe(t, "--config", file, "--port", "0", "--software", "from-flag")
	udp := r.endpoint(t, "udp")
	if udp.Port() == 3478 {
		t.Errorf("--port 0 did not override the file's port: %v", udp)
	}
	if strings.Contains(r.out.String(), "tcp") {
		t.Errorf("tcp: false from the file was lost:\n%s", r.out)
	}
	m := udpBinding(t, udp)
	if sw, _ := m.Software(); sw != "from-flag" {
		t.Errorf("SOFTWARE = %q, want from-flag", sw)
	}
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
}

func TestServeFileValuesApply(t *testing.T) {
	file := filepath.Join(t.TempDir(), "icebreaker.yaml")
	writeFile(t, file, "listen: [\"127.0.0.1:0\"]\nudp:\n  enabled: false\nstun:\n  software: from-file\n")
	r := startServe(t, "--config", file)
	c, err := net.Dial("tcp", r.endpoint(t, "tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	m := streamBinding(t, c)
	if sw, _ := m.Software(); sw != "from-file" {
		t.Errorf("SOFTWARE = %q, want from-file", sw)
	}
	if strings.Contains(r.out.String(), "udp") {
		t.Errorf("udp: false from the file was ignored:\n%s", r.out)
	}
	r.stop(t)
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "badkey.yaml")
	writeFile(t, badKey, "log:\n  level: info\nstun:\n  port: 3478\n")
	badIP := filepath.Join(dir, "badip.yaml")
	writeFile(t, badIP, "stun:\n  alternate_ip: foo\n")
	tests := []struct {
		name string
		args []string
		code int
		want []string // substrings of stderr
	}{
		{"unknown key in file", []string{"--config", badKey}, 1, []string{badKey + ":4: stun.port: unknown key (it moved: use listen"}},
		{"bad IP in file", []string{"--config", badIP}, 1, []string{`stun.alternate_ip: "foo" is not an IP address`}},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml: no such file"}},
		{"unknown flag", []string{"--bogus"}, 2, []string{"flag provided but not defined: -bogus"}},
		{"extra argument", []string{"--port", "0", "now"}, 2, []string{`unexpected argument "now"`}},
		{"bad port flag", []string{"--port", "x"}, 2, []string{"-port"}},
		{"port out of range", []string{"--port", "70000"}, 2, []string{"--port: 70000 is not a port number"}},
		{"bad listen flag", []string{"--listen", "foo"}, 2, []string{`--listen: "foo" is not an IP address`}},
		{"alt-ip with wildcard", []string{"--alt-ip", "127.0.0.2"}, 2, []string{`--alt-ip: requires listen to be a specific IP address, not "0.0.0.0:3478"`}},
		{"cert without key", []string{"--listen", "127.0.0.1", "--tls-cert", "c.pem"}, 1, []string{"icebreaker serve: tls.key: must be set"}},
		{"bad log level", []string{"--log-level", "loud"}, 2, []string{"--log-level"}},
		{"bad cert path", []string{"--listen", "127.0.0.1", "--port", "0", "--tls-port", "0",
			"--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem")}, 1,
			[]string{"TLS certificate", "cert.pem: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runServeOnce(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			if tt.code == 1 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want a one-line error, got:\n%s", stderr)
			}
		})
	}
}

func TestServePortInUse(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := busy.LocalAddr().(*net.UDPAddr).AddrPort()
	code, _, stderr := runServeOnce(t, "--listen", "127.0.0.1", "--port", strconv.Itoa(int(p.Port())))
	if code != 1 {
		t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
	}
	if want := "icebreaker serve: listen udp " + p.String() + ": address already in use"; !strings.HasPrefix(stderr, want) ||
		strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr is not one line starting %q:\n%s", want, stderr)
	}
}

func TestServeHelpAndDefaultConfig(t *testing.T) {
	code, help, _ := runServeOnce(t, "-h")
	if code != 0 || !strings.Contains(help, "--default-config") || !strings.Contains(help, "-alt-ip") {
		t.Errorf("-h: status %d, stdout:\n%s", code, help)
	}
	code, out, _ := runServeOnce(t, "--default-config")
	if code != 0 || out != config.DefaultYAML() {
		t.Errorf("--default-config: status %d, output:\n%s", code, out)
	}
}

// TestServeRFC5780 serves on two loopback addresses and checks the four
// UDP endpoints are listed with roles, and OTHER-ADDRESS is the alternate.
func TestServeRFC5780(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.2 on the loopback interface, as Linux has")
	}
	r := startServe(t, "--listen", "127.0.0.1", "--alt-ip", "127.0.0.2", "--port", "0")
	primary := r.endpoint(t, "udp")
	r.waitFor(t, regexp.MustCompile(`(?m)(^  udp .*\n){4}`))
	var lines []string
	for line := range strings.Lines(r.out.String()) {
		if strings.HasPrefix(line, "  udp ") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 4 {
		t.Errorf("want 4 UDP endpoints, got:\n%s", r.out)
	}
	for _, l := range lines {
		if len(strings.Fields(l)) < 3 {
			t.Errorf("UDP endpoint without a role: %q", l)
		}
	}
	m := udpBinding(t, primary)
	other, err := m.Address(stun.AttrOtherAddress)
	if err != nil {
		t.Fatalf("OTHER-ADDRESS: %v", err)
	}
	if other.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("OTHER-ADDRESS = %v, want 127.0.0.2:*", other)
	}
	r.stop(t)
}

func TestReachable(t *testing.T) {
	ifaddrs := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("::1"),
		netip.MustParseAddr("10.0.0.5"),
		netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("2001:db8::5"),
	}
	tests := []struct {
		listen string
		want   []string
	}{
		{"0.0.0.0:3478", []string{"127.0.0.1:3478", "10.0.0.5:3478"}},
		{"[::]:3478", []string{"127.0.0.1:3478", "[::1]:3478", "10.0.0.5:3478", "[2001:db8::5]:3478"}},
		{"10.0.0.5:3478", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range reachable(netip.MustParseAddrPort(tt.listen), ifaddrs) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("reachable(%s) = %v, want %v", tt.listen, got, tt.want)
		}
	}
}

// TestServeSignal runs the real main in a child process and stops it with
// SIGTERM, as a service manager would.
func TestServeSignal(t *testing.T) {
	if os.Getenv("IB_TEST_SERVE_CHILD") == "1" {
		os.Args = []string{"icebreaker", "serve", "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret", "--rendezvous", "off"}
		main() // exits
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	isolateUserStore(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeSignal$")
	cmd.Env = append(os.Environ(), "IB_TEST_SERVE_CHILD=1")
	r := &serveRun{out: newServeBuffer(), errb: newServeBuffer(), done: make(chan int, 1)}
	cmd.Stdout, cmd.Stderr = r.out, r.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		r.done <- cmd.ProcessState.ExitCode()
	}()
	r.cancel = func() { cmd.Process.Signal(syscall.SIGTERM) }
	t.Cleanup(func() {
		if !r.exited {
			cmd.Process.Kill()
			<-r.done
		}
	})
	udp := r.endpoint(t, "udp")
	udpBinding(t, udp)
	// An allocation, with its relay goroutine, is open when SIGTERM
	// comes: the server must still close cleanly.
	c := dialTURN(t, udp, "alice", "secret")
	c.allocate()
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, r.errb)
	}
	if !strings.Contains(r.out.String(), "icebreaker serve: stopped\n") {
		t.Errorf("no stop line:\n%s", r.out)
	}
}
