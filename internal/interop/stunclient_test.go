package interop

import (
	"net/netip"
	"regexp"
	"strconv"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// reflexiveLine is how turnutils_stunclient reports the mapped address:
// "0: : IPv4. UDP reflexive addr: 127.0.0.1:45502".
var reflexiveLine = regexp.MustCompile(`UDP reflexive addr: (\S+)`)

// TestCoturnStunclientAgainstServe runs coturn's turnutils_stunclient (an
// RFC 5389 client with the magic cookie) against `icebreaker serve` and
// checks the reflexive address it reports. The client's source port is
// ephemeral and it does not print it, so the port can only be checked for
// being a real one, and the IP for being loopback. Its -f (RFC 5780) mode
// is not run: against a server without a second address it waits forever.
func TestCoturnStunclientAgainstServe(t *testing.T) {
	t.Parallel()
	client := testutil.RequireBinary(t, "turnutils_stunclient")
	icebreaker(t) // build before testContext starts the clock
	ctx := testContext(t)
	srv := startServe(t, ctx, nil, "--listen", "127.0.0.1", "--port", "0")

	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"default", nil},
		{"local address", []string{"-L", "127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-p", strconv.Itoa(int(srv.udp.Port()))}, tc.extra...), "127.0.0.1")
			out, err := testutil.Command(ctx, client, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("turnutils_stunclient %v: %v\n%s", args, err, out)
			}
			ms := reflexiveLine.FindAllStringSubmatch(string(out), -1)
			if len(ms) == 0 {
				t.Fatalf("no %q line in:\n%s", "UDP reflexive addr", out)
			}
			first := ms[0][1]
			for _, m := range ms {
				if m[1] != first {
					t.Errorf("reflexive addresses differ: %s and %s", first, m[1])
				}
			}
			ap, err := netip.ParseAddrPort(first)
			if err != nil {
				t.Fatalf("reflexive addr %q: %v", first, err)
			}
			if ap.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("reflexive IP %v, want 127.0.0.1", ap.Addr())
			}
			if ap.Port() == 0 || ap.Port() == srv.udp.Port() {
				t.Errorf("reflexive port %d: not a client's source port", ap.Port())
			}
			t.Logf("turnutils_stunclient: reflexive %v", ap)
		})
	}
	if srv.proc.Exited() {
		t.Fatalf("server exited:\n%s", srv.proc.Output())
	}
}
