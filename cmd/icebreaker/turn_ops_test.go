package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTurnLoadFails: turn load exits 1 when allocations are refused, when
// more than --max-loss is lost, and, at the first 403, when the server's
// policy forbids the peers, with the hint that fixes it.
func TestTurnLoadFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("turn: {quotas: {allocations_per_user: 2}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quota := startServe(t, "--config", file, "--listen", "127.0.0.1", "--port", "0", "--user", "u:p", "--allow-peer", "127.0.0.0/8", "--user-db", "none")
	strict := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "u:p", "--user-db", "none")
	quotaURI, strictURI := "turn:"+quota.endpoint(t, "udp").String(), "turn:"+strict.endpoint(t, "udp").String()

	t.Run("quota", func(t *testing.T) {
		code, _, errb := runTurnCmd(t, "load", quotaURI, "--user", "u", "--pass", "p", "--allocations", "4", "--rate", "100", "--duration", "300ms")
		if code != 1 || !strings.Contains(errb, "2 of 4 allocations failed") || !strings.Contains(errb, "486") {
			t.Errorf("exit %d, stderr %q; want 1 and 2 of 4 failed (486)", code, errb)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		// A run that waited out --timeout at each refused permission
		// would end by the test's own 30 s bound instead (exit 130).
		code, _, errb := runTurnCmd(t, "load", strictURI, "--user", "u", "--pass", "p", "--allocations", "4", "--timeout", "60s")
		if code != 1 || !strings.Contains(errb, "stopped at the first permission") || !strings.Contains(errb, "--allow-peer") {
			t.Errorf("exit %d, stderr %q; want 1 with the first 403 and the --allow-peer hint", code, errb)
		}
	})
	t.Run("loss", func(t *testing.T) {
		peer := startEchoPeerEvery(t, 2, nil)
		args := []string{"load", quotaURI, "--user", "u", "--pass", "p", "--allocations", "1", "--peer", peer.String(),
			"--mode", "send", "--rate", "200", "--duration", "500ms"}
		code, _, errb := runTurnCmd(t, args...)
		if code != 1 || !strings.Contains(errb, "--max-loss") {
			t.Errorf("half lost: exit %d, stderr %q; want 1 naming --max-loss", code, errb)
		}
		if code, out, errb := runTurnCmd(t, append(args, "--max-loss", "75")...); code != 0 {
			t.Errorf("half lost with --max-loss 75: exit %d\n%s%s", code, out, errb)
		}
	})
	t.Run("bad max-loss", func(t *testing.T) {
		if code, _, errb := runTurnCmd(t, "load", quotaURI, "--max-loss", "101"); code != 2 || !strings.Contains(errb, "--max-loss") {
			t.Errorf("exit %d, stderr %q", code, errb)
		}
	})
}

// TestTurnCheckHints: against a default server the relay step's 403 says
// how to fix it; --probe-policy does not call a server that drops
// datagrams to its own port a relay to itself, and lists 127.0.0.1 once.
func TestTurnCheckHints(t *testing.T) {
	strict := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "u:p", "--user-db", "none")
	code, out, _ := runTurnCmd(t, "check", "turn:"+strict.endpoint(t, "udp").String(), "--user", "u", "--pass", "p", "--no-tcp")
	if code != 1 || !strings.Contains(out, "403") || !strings.Contains(out, "--allow-peer") || !strings.Contains(out, "--peer") {
		t.Errorf("check of a default server: exit %d; want 1 with the 403 and the hints\n%s", code, out)
	}

	loose := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "u:p", "--user-db", "none", "--allow-peer", "127.0.0.0/8")
	code, out, _ = runTurnCmd(t, "check", "turn:"+loose.endpoint(t, "udp").String(), "--user", "u", "--pass", "p", "--no-tcp", "--probe-policy")
	if code != 0 {
		t.Fatalf("check --probe-policy: exit %d\n%s", code, out)
	}
	var warn127 []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "WARN") && strings.Contains(l, "relaying to 127.0.0.1 (") {
			warn127 = append(warn127, l)
		}
	}
	if len(warn127) != 1 || strings.Contains(warn127[0], "was answered") || !strings.Contains(warn127[0], "only the server's own port") {
		t.Errorf("warnings about 127.0.0.1: %q; want one, saying only the server's own port is dropped\n%s", warn127, out)
	}
}

// TestTurnCheckIPv6Brackets: an IPv6 server is shown with its brackets,
// and its timeout fails the check.
func TestTurnCheckIPv6Brackets(t *testing.T) {
	code, out, _ := runTurnCmd(t, "check", "turn:[::1]:9?transport=tcp", "--user", "u", "--pass", "p", "--timeout", "200ms", "--json")
	if code != 1 || !strings.Contains(out, `"server":"[::1]:9 (tcp)"`) {
		t.Errorf("exit %d, output %s; want the server as [::1]:9", code, out)
	}
}
