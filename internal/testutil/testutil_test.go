package testutil

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skip, Fatal and Error instead of
// ending the goroutine or failing the test. Only the methods the helpers use
// are overridden.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		name, ci   string
		skip, fail bool
	}{
		{"local", "", true, false},
		{"ci", "true", false, true},
		{"ci-false", "false", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			r := &recorder{TB: t}
			RequireBinary(r, "icebreaker-no-such-program")
			if (r.skipped != "") != c.skip || (r.failed != "") != c.fail {
				t.Fatalf("CI=%q: skipped %q, failed %q", c.ci, r.skipped, r.failed)
			}
			if msg := r.skipped + r.failed; !strings.Contains(msg, "icebreaker-no-such-program") {
				t.Errorf("message %q does not name the program", msg)
			}
		})
	}
}

func TestRequireBinaryFound(t *testing.T) {
	r := &recorder{TB: t}
	p := RequireBinary(r, "sh")
	if p == "" || r.skipped != "" || r.failed != "" {
		t.Fatalf("RequireBinary(sh) = %q, skipped %q, failed %q", p, r.skipped, r.failed)
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	// Other test binaries bind ephemeral ports concurrently, so a port that
	// was free can be taken before we rebind it. Demand success within a
	// few tries rather than on the first.
	var lastErr error
	for range 5 {
		port := FreePort(t)
		if port <= 0 || port > 65535 {
			t.Fatalf("FreePort = %d", port)
		}
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			lastErr = err
			continue
		}
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err != nil {
			lastErr = err
			continue
		}
		l.Close()
		return
	}
	t.Fatalf("no port from FreePort could be bound for both UDP and TCP: %v", lastErr)
}
