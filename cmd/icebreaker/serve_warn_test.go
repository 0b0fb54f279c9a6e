package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestServeRelayDeniedWarning: a relay address that the policy denies is
// warned about with the setting that fixes it; with --log-format json the
// banner's warnings are JSON log records instead of banner lines.
func TestServeRelayDeniedWarning(t *testing.T) {
	ready := regexp.MustCompile(`TURN: \d+ static user`)
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "u:p")
	r.waitFor(t, ready)
	if out := r.out.String(); !strings.Contains(out, "TURN: warning: the relay address 127.0.0.1 is in a range the relay policy denies") ||
		!strings.Contains(out, "--allow-peer 127.0.0.1/32") {
		t.Errorf("no warning about the denied relay address:\n%s", out)
	}

	r = startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "u:p", "--allow-peer", "127.0.0.0/8")
	r.waitFor(t, ready)
	if out := r.out.String(); strings.Contains(out, "policy denies") {
		t.Errorf("warning about an allowed relay address:\n%s", out)
	}

	r = startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "u:p", "--log-format", "json")
	r.waitFor(t, ready)
	r.stop(t)
	if out := r.out.String(); strings.Contains(out, "warning") {
		t.Errorf("JSON log format, but warnings in the banner:\n%s", out)
	}
	var warned int
	for _, line := range strings.Split(strings.TrimSpace(r.errb.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", line, err)
		}
		if rec["level"] == "WARN" && strings.Contains(rec["msg"].(string), "policy denies") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d JSON warnings about the denied relay address, want 1:\n%s", warned, r.errb)
	}
}
