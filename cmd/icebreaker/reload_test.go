package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// TestReloadQuotasLevelAndRestartKeys: `icebreaker reload` applies new
// quotas and a new log level, keeps the listeners when the listen address
// changes (and says it needs a restart), and keeps the allocations.
func TestReloadQuotasLevelAndRestartKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	sock := filepath.Join(dir, "a.sock")
	write := func(yaml string) {
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("listen: [\"127.0.0.1:0\"]\nturn: {quotas: {allocations_per_user: 1}}\n")
	r := startServe(t, "--config", file, "--user-db", "none", "--user", "u:p", "--admin", sock)
	udp := r.endpoint(t, "udp")
	cfg := turnclient.Config{Server: udp.String(), Username: "u", Password: "p"}
	a, err := turnclient.Allocate(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err := turnclient.Allocate(t.Context(), cfg); err == nil {
		b.Close()
		t.Fatal("a second allocation within a quota of 1")
	}

	write("listen: [\"127.0.0.2:0\"]\nturn: {quotas: {allocations_per_user: 2}}\nlog: {level: debug}\n")
	if code, out, errb := runAdmin(t, "reload", "--admin", sock); code != 0 || !strings.Contains(out, "need a restart, and keep their running values: listen") {
		t.Fatalf("reload: exit %d %s%s", code, out, errb)
	}
	b, err := turnclient.Allocate(t.Context(), cfg)
	if err != nil {
		t.Fatalf("after raising the quota to 2: %v", err)
	}
	defer b.Close()
	if code, out, _ := runAdmin(t, "status", "--admin", sock); code != 0 || !strings.Contains(out, "2 allocation(s)") || !strings.Contains(out, "udp "+udp.String()) {
		t.Errorf("status after reload: exit %d\n%s", code, out)
	}
	waitLog(t, r, "need a restart")
	logs := r.errb.String()
	if !strings.Contains(logs, "need a restart") || !regexp.MustCompile(`keys=listen\b`).MatchString(logs) {
		t.Errorf("no warning that listen needs a restart:\n%s", logs)
	}
	// Debug is on: the refused permission of a denied peer is logged.
	if err := a.CreatePermission(t.Context(), udp.Addr()); err == nil {
		t.Fatal("a permission to loopback under the default policy")
	}
	waitLog(t, r, "level=DEBUG")
}

// waitLog waits until the server's log has substr.
func waitLog(t *testing.T, r *serveRun, substr string) {
	t.Helper()
	deadline := time.After(serveTimeout)
	for !strings.Contains(r.errb.String(), substr) {
		select {
		case <-r.errb.changed:
		case <-deadline:
			t.Fatalf("the log has no %q after %v:\n%s", substr, serveTimeout, r.errb)
		}
	}
}

// TestReloadRotatesMintingSecret: after a reload that rotates the REST
// secrets, the rendezvous mints credentials with the new first secret,
// and the TURN server accepts them (the old secret is gone).
func TestReloadRotatesMintingSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	sock := filepath.Join(dir, "a.sock")
	write := func(secret string) {
		yaml := "listen: [\"127.0.0.1:0\"]\nturn: {rest_secrets: [" + secret + "]}\n" +
			"rendezvous: {listen: \"127.0.0.1:0\", tls_listen: \"off\", transit_listen: \"off\", db: none}\n"
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old-secret")
	r := startServe(t, "--config", file, "--user-db", "none", "--admin", sock)
	udp := r.endpoint(t, "udp")
	m := rendezvousLine.FindStringSubmatch(r.waitFor(t, rendezvousLine)[0])
	url := "ws://" + m[2] + "/v1"
	mint := func() (user, pass string) {
		t.Helper()
		got := rendezvousCall(t, url, nil, `{"type":"icebreaker-ice-servers","id":"2"}`)
		servers, _ := got["ice_servers"].([]any)
		for _, s := range servers {
			s, _ := s.(map[string]any)
			if u, ok := s["username"].(string); ok {
				p, _ := s["credential"].(string)
				return u, p
			}
		}
		t.Fatalf("no TURN credentials in %v", got)
		return "", ""
	}
	user, pass := mint()
	if pass != turn.RESTPassword("old-secret", user) {
		t.Fatalf("before the reload: %q is not signed by the old secret", pass)
	}
	write("new-secret")
	if code, out, errb := runAdmin(t, "reload", "--admin", sock); code != 0 {
		t.Fatalf("reload: exit %d %s%s", code, out, errb)
	}
	user, pass = mint()
	if pass != turn.RESTPassword("new-secret", user) {
		t.Fatalf("after the reload: %q is not signed by the new secret", pass)
	}
	a, err := turnclient.Allocate(t.Context(), turnclient.Config{Server: udp.String(), Username: user, Password: pass})
	if err != nil {
		t.Fatalf("the freshly minted credentials: %v", err)
	}
	a.Close()
}
