package interop

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// mappedLine is how Vovida's stun prints a MAPPED-ADDRESS it received.
var mappedLine = regexp.MustCompile(`MappedAddress = (\S+)`)

// TestClassicStunClientAgainstServe runs Debian's stun (Vovida 0.97), a
// classic RFC 3489 client that sends no magic cookie, against `icebreaker
// serve`: the server must answer with MAPPED-ADDRESS (RFC 8489, Section
// 14.1; RFC 3489, Section 11.2.1). The client always targets port 3478 and
// -p sets its source port, so both run in a network namespace of this test,
// where 3478 is free and the source port is known. The client's exit
// status is its NAT verdict, so the test reads its output instead.
func TestClassicStunClientAgainstServe(t *testing.T) {
	t.Parallel()
	client := testutil.RequireBinary(t, "stun")
	icebreaker(t) // build before testContext starts the clock
	for _, tc := range []struct {
		name     string
		software string // --software; an odd length tests RFC 3489 padding
	}{
		{"no software", ""},
		{"software of odd length", "icebreaker-interop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runClassic(t, client, tc.software)
		})
	}
}

func runClassic(t *testing.T, client, software string) {
	ctx := testContext(t)
	ns := newNetNS(t, ctx)
	ip := testutil.RequireBinary(t, "ip")
	startServe(t, ctx, []string{ip, "netns", "exec", ns},
		"--listen", "127.0.0.1", "--port", "3478", "--software", software)

	// The client also binds srcPort+1 for its second socket.
	const srcPort = 41234
	out, err := testutil.Command(ctx, ip, "netns", "exec", ns, client, "127.0.0.1", "-v", "-p", strconv.Itoa(srcPort)).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("stun did not finish: %v\n%s", ctx.Err(), out)
	}
	t.Logf("stun exited with %v (its NAT verdict)", err)

	want := "127.0.0.1:" + strconv.Itoa(srcPort)
	ms := mappedLine.FindAllStringSubmatch(string(out), -1)
	if len(ms) == 0 {
		t.Fatalf("no MappedAddress line in:\n%s", out)
	}
	for _, m := range ms {
		if m[1] != want {
			t.Errorf("MappedAddress = %s, want %s", m[1], want)
		}
	}
	// Vovida's parser complains like this when an attribute's length does
	// not fit what it expects: it does not skip padding, so RFC 3489
	// text attributes must fill whole 32-bit words (Section 11.2.9).
	if bad := lines(string(out), "claims attribute is larger"); bad != "" {
		t.Errorf("stun could not parse an attribute of a response:\n%s", bad)
	}
	if software != "" {
		if got := lines(string(out), "ServerName = "); !strings.Contains(got, "ServerName = "+software) {
			t.Errorf("stun read SOFTWARE as %q, want %q", got, software)
		}
	}
	if t.Failed() {
		t.Logf("stun output:\n%s", out)
	}
}
