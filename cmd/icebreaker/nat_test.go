package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/natbehavior"
	"github.com/icebreaker-net/icebreaker/stun"
)

// natResponder is a loopback STUN server without RFC 5780 (one address):
// it answers Binding requests with XOR-MAPPED-ADDRESS, or nothing when
// mute. It stops in the test's cleanup.
func natResponder(t *testing.T, mute bool) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		var m stun.Message
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if mute || m.Parse(buf[:n]) != nil || m.Type != stun.BindingRequest {
				continue
			}
			b := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
			b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, m.TransactionID)
			_, _ = c.WriteToUDPAddrPort(b, from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func runNatCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code := run(ctx, append([]string{"nat"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// natGoroutines fails t if fn leaves goroutines behind (allowing a bounded
// wait for exiting ones).
func natGoroutines(t *testing.T, fn func()) {
	t.Helper()
	checkNoLeak(t, "nat", fn)
}

func TestNatUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{nil, "want one SERVER[:PORT], got 0"},
		{[]string{"a", "b"}, "want one SERVER[:PORT], got 2"},
		{[]string{"-4", "-6", "a"}, "-4 and -6 exclude each other"},
		{[]string{"--rto", "0", "a"}, "--rto must be positive"},
		{[]string{"--timeout", "-1s", "a"}, "--timeout must be positive"},
		{[]string{"--timeout", "soon", "a"}, "invalid value"},
		{[]string{"--lifetime", "--lifetime-max", "10ms", "a"}, "--lifetime-max must be at least 1s"},
		{[]string{"--local", "nowhere", "a"}, `--local: "nowhere" is not IP`},
		{[]string{"-4", "--local", "::1", "a"}, "does not belong to network udp4"},
		{[]string{"--bogus", "a"}, "flag provided but not defined"},
	} {
		code, stdout, stderr := runNatCmd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.msg) || stdout != "" {
			t.Errorf("nat %q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.msg)
		}
	}
	if code, stdout, stderr := runNatCmd(t, "-h"); code != 0 || !strings.Contains(stdout, "usage: icebreaker nat") || stderr != "" {
		t.Errorf("nat -h: exit %d, stdout %q, stderr %q; want 0 and the help on stdout", code, stdout, stderr)
	}
}

func TestNatFailures(t *testing.T) {
	mute := natResponder(t, true)
	natGoroutines(t, func() {
		code, _, stderr := runNatCmd(t, "--rto", "50ms", "--timeout", "200ms", mute.String())
		want := "icebreaker nat: no response from " + mute.String() + " in 200ms"
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("mute server: exit %d, stderr %q; want 1 and %q", code, stderr, want)
		}
	})
	// A name that is not a domain name fails without asking any DNS server.
	code, _, stderr := runNatCmd(t, "bad..host:3478")
	if code != 1 || !strings.Contains(stderr, "icebreaker nat: cannot resolve bad..host") {
		t.Errorf("bad name: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runNatCmd(t, "-6", "127.0.0.1")
	if code != 1 || !strings.Contains(stderr, "no IPv6 address") {
		t.Errorf("-6 with an IPv4 server: exit %d, stderr %q", code, stderr)
	}
}

func TestNatReport(t *testing.T) {
	srv := natResponder(t, false)
	natGoroutines(t, func() {
		// A server without RFC 5780 still gives a report: exit 0, with
		// the tests that could not run and why.
		code, stdout, stderr := runNatCmd(t, srv.String())
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{
			"Server:            " + srv.String() + "\n",
			"(no NAT)\n",
			"Mapping:           endpoint-independent\n",
			"Filtering:         unknown\n",
			"Hairpinning:       yes\n",
			"does not support RFC 5780",
			"Not measured:\n  mapping test II, mapping test III, filtering test II, filtering test III: the server sent no OTHER-ADDRESS",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}

		// JSON, with the flags after the server.
		code, stdout, stderr = runNatCmd(t, srv.String(), "--json", "--hairpin=false")
		if code != 0 || stderr != "" {
			t.Fatalf("--json: exit %d, stderr %q", code, stderr)
		}
		var r natbehavior.Report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if r.Server != srv || r.NATPresent != natbehavior.No || r.Hairpinning != natbehavior.Unknown ||
			r.MappedAddress != r.LocalAddress || r.Mapping != natbehavior.EndpointIndependent || len(r.NotRun) != 4 {
			t.Errorf("report %+v", r)
		}
		if strings.Count(stdout, "\n") != 1 {
			t.Errorf("JSON is not one object on one line:\n%s", stdout)
		}
		for _, key := range []string{`"nat_present":false`, `"hairpinning":null`, `"filtering":"unknown"`, `"not_run":[`} {
			if !strings.Contains(stdout, key) {
				t.Errorf("JSON lacks %s:\n%s", key, stdout)
			}
		}
	})
}
