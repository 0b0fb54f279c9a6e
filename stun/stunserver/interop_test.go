package stunserver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peerTool returns the path of a third-party client, or skips the test
// when it is missing (fails it under CI=true, where it must be installed).
func peerTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (run make test-deps): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// runPeer runs a client to completion with a bounded time; the context
// kills it by PID if it hangs.
func runPeer(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, peerTool(t, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out; output:\n%s", name, out.String())
	}
	if err != nil {
		t.Logf("%s exited with %v", name, err)
	}
	t.Logf("%s %s:\n%s", name, strings.Join(args, " "), out.String())
	return out.String()
}

// TestInteropTurnutilsStunclient: coturn's STUN client finds its reflexive
// address through our server, plain and with RFC 5780 processing.
func TestInteropTurnutilsStunclient(t *testing.T) {
	needIP2(t)
	s := startServer(t, Config{UDP: loop4, AlternateIP: ip2, UDPSockets: 2, Software: "icebreaker-test"})
	port := strconv.Itoa(int(endpoint(t, s, "udp", RolePrimary).Port()))
	for _, args := range [][]string{
		{"-p", port, "127.0.0.1"},
		{"-f", "-p", port, "127.0.0.1"},
	} {
		out := runPeer(t, "turnutils_stunclient", args...)
		if !strings.Contains(out, "UDP reflexive addr: 127.0.0.1:") {
			t.Errorf("turnutils_stunclient %v found no reflexive address; output:\n%s", args, out)
		}
	}
	if st := s.Stats(); st.Malformed != 0 || st.ErrorResponses != 0 {
		t.Errorf("Stats after turnutils_stunclient: %+v", st)
	}
}

// TestInteropTurnutilsNatdiscovery: coturn's RFC 5780 discovery client,
// run against our server on 127.0.0.1 and 127.0.0.2, with no NAT in
// between, must find endpoint-independent mapping and filtering, also with
// PADDING.
func TestInteropTurnutilsNatdiscovery(t *testing.T) {
	needIP2(t)
	s := startServer(t, Config{UDP: loop4, AlternateIP: ip2, UDPSockets: 2})
	port := strconv.Itoa(int(endpoint(t, s, "udp", RolePrimary).Port()))
	for _, extra := range [][]string{nil, {"-P"}} {
		args := append([]string{"-m", "-f"}, extra...)
		args = append(args, "-p", port, "127.0.0.1")
		out := runPeer(t, "turnutils_natdiscovery", args...)
		for _, want := range []string{"Endpoint Independent Mapping", "Endpoint Independent Filtering"} {
			if !strings.Contains(out, want) {
				t.Errorf("turnutils_natdiscovery %v: no %q; output:\n%s", args, want, out)
			}
		}
	}
	if st := s.Stats(); st.Malformed != 0 {
		t.Errorf("Stats after turnutils_natdiscovery: %+v", st)
	}
}
