// Package testutil holds helpers shared by icebreaker's tests: the policy for
// a missing prerequisite (a peer binary such as coturn's turnserver, or root),
// free loopback ports, and processes that a test starts and must reap.
//
// The policy for prerequisites is the project's rule for interop tests: when
// something a test needs is missing, the test fails if the environment
// variable CI is "true" (CI must run everything) and is skipped, with the
// reason, otherwise.
//
// Everything here is for tests only and takes a testing.TB.
package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// InCI reports whether the tests run in CI (the environment variable CI is
// "true"), where a missing prerequisite is a failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends the test because a prerequisite is missing: t.Fatal when
// InCI, t.Skip otherwise. The message says why.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", reason)
		return
	}
	t.Skip(reason)
}

// RequireBinary returns the path of the program name, looked up in PATH (and
// in /usr/sbin and /sbin, which a non-login PATH may lack). When it is not
// found it calls Unavailable, so it must be called from the test goroutine.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		cand := dir + "/" + name
		if st, serr := os.Stat(cand); serr == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return cand
		}
	}
	Unavailable(t, "%s not found (%v); install it (scripts/install-test-deps.sh) to run this test", name, err)
	return ""
}

// RequireRoot calls Unavailable unless the test runs as root (needed to
// create network namespaces).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (uid %d): it creates a network namespace", os.Geteuid())
	}
}

// FreePort returns a port number that was free on 127.0.0.1 for both UDP
// and TCP when FreePort returned. Another process may take it before the
// caller binds it, so a caller that starts a server on it should retry with
// a fresh port when the bind fails.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			t.Fatalf("testutil: %v", err)
		}
		l.Close()
		return port
	}
	t.Fatal("testutil: no port free for both UDP and TCP on 127.0.0.1 after 20 tries")
	return 0
}
