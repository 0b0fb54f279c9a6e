package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/icecli"
	"github.com/icebreaker-net/icebreaker/stun"
)

// refuseBinding answers a Binding request with 400 Bad Request.
func refuseBinding(m *stun.Message, _ netip.AddrPort) []byte {
	if m.Type != stun.BindingRequest {
		return nil
	}
	b := stun.AppendHeader(nil, stun.BindingError, m.TransactionID)
	return stun.AppendErrorCode(b, 400, "Bad Request")
}

// closedTCPPort returns a loopback TCP address nothing listens on.
func closedTCPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}

// TestICEGatherFailuresReported: a STUN server that refuses and a TURN
// server that cannot be reached give no candidate, and each gets a warning
// line and an entry in the --json summary, while the host candidates
// connect.
func TestICEGatherFailuresReported(t *testing.T) {
	stunAddr := stunUDPResponder(t, "udp4", refuseBinding)
	turnAddr := closedTCPPort(t)
	offerArgs := append([]string{"--stun", stunAddr.String(), "--turn", "turn:" + turnAddr.String() + "?transport=tcp",
		"--turn-user", "u", "--turn-pass", "p", "--count", "1", "--json"}, loopbackArgs...)
	offer, _ := runICEPair(t, offerArgs, append([]string{"--count", "1"}, loopbackArgs...))
	stunURI := "stun:" + stunAddr.String()
	turnURI := "turn:" + turnAddr.String() + "?transport=tcp"
	for _, want := range []string{
		"warning: " + stunURI + ": STUN Binding from 127.0.0.1:",
		"warning: " + turnURI + ": TURN allocation failed: ",
	} {
		if !strings.Contains(offer.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, offer.stderr)
		}
	}
	var sum icecli.Summary
	if err := json.Unmarshal([]byte(offer.rest), &sum); err != nil {
		t.Fatalf("summary %q: %v", offer.rest, err)
	}
	got := map[string]icecli.Failure{}
	for _, f := range sum.GatherFailures {
		got[f.URI] = f
	}
	if f := got[stunURI]; f.Op != "binding" || !strings.HasPrefix(f.Base, "127.0.0.1:") || !strings.Contains(f.Error, "400") {
		t.Errorf("summary's STUN failure %+v", f)
	}
	if f := got[turnURI]; f.Op != "allocate" || f.Base != "" || f.Error == "" {
		t.Errorf("summary's TURN failure %+v", f)
	}
	if len(got) != 2 {
		t.Errorf("gather_failures %+v, want the STUN and the TURN server", sum.GatherFailures)
	}
}

// TestICERelayOnlyWrongPassword: with --relay-only and a TURN password the
// server refuses, the command says that the TURN server gave no candidate
// and why, not that there is no host address, and "ice:" once.
func TestICERelayOnlyWrongPassword(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret")
	server := r.endpoint(t, "udp")
	code, _, errs := runICEWithStdin(t, "", "offer", "--relay-only", "--turn", "turn:"+server.String(),
		"--turn-user", "alice", "--turn-pass", "wrong")
	uri := "turn:" + server.String() + "?transport=udp"
	for _, want := range []string{
		"warning: " + uri + ": TURN allocation failed: ",
		"401",
		"icebreaker ice: no candidate gathered: with --relay-only",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	t.Logf("stderr:\n%s", errs)
	if code != 1 || strings.Contains(errs, "host address") || strings.Contains(errs, "ice: ice:") {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}
}
