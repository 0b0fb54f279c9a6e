package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// runAdmin runs an admin command (status, sessions, reload, drain).
func runAdmin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestAdminSessions: `icebreaker status` and `sessions` show a running
// server's allocations through the admin socket; `sessions kill` ends them
// by ID and by user, with their usage records.
func TestAdminSessions(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none",
		"--user", "alice:pw", "--user", "bob:pw", "--allow-peer", "127.0.0.0/8", "--admin", sock)
	udp := r.endpoint(t, "udp")
	var relays []*turnclient.Relay
	for _, u := range []string{"alice", "alice", "bob"} {
		rl, err := turnclient.Allocate(t.Context(), turnclient.Config{Server: udp.String(), Username: u, Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		defer rl.Close()
		relays = append(relays, rl)
	}

	code, out, errb := runAdmin(t, "status", "--admin", sock)
	if code != 0 || !strings.Contains(out, "3 allocation(s)") || !strings.Contains(out, "udp "+udp.String()) {
		t.Errorf("status: exit %d\n%s%s", code, out, errb)
	}
	code, out, _ = runAdmin(t, "sessions", "--json", "--user", "alice", "--admin", sock)
	var ss []turnserver.Session
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var s turnserver.Session
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("sessions --json line %q: %v", line, err)
		}
		ss = append(ss, s)
	}
	if code != 0 || len(ss) != 2 || ss[0].User != "alice" || len(ss[0].Relayed) != 1 {
		t.Fatalf("sessions --user alice: exit %d, %+v", code, ss)
	}
	code, out, _ = runAdmin(t, "sessions", "--admin", sock)
	if code != 0 || !strings.Contains(out, "USER") || strings.Count(out, "alice") != 2 || !strings.Contains(out, "bob") {
		t.Errorf("sessions table: exit %d\n%s", code, out)
	}
	if code, out, errb = runAdmin(t, "sessions", "kill", ss[0].ID, "--admin", sock); code != 0 || !strings.Contains(out, "killed 1") {
		t.Errorf("sessions kill ID: exit %d %s%s", code, out, errb)
	}
	if code, out, errb = runAdmin(t, "sessions", "kill", "--user", "bob", "--admin", sock); code != 0 || !strings.Contains(out, "killed 1") {
		t.Errorf("sessions kill --user bob: exit %d %s%s", code, out, errb)
	}
	if code, _, errb = runAdmin(t, "sessions", "kill", "--admin", sock); code != 2 || !strings.Contains(errb, "give one session ID") {
		t.Errorf("sessions kill without ID: exit %d %s", code, errb)
	}
	if code, _, errb = runAdmin(t, "sessions", "kill", "ffffffffffffffff", "--admin", sock); code != 1 || !strings.Contains(errb, "no session") {
		t.Errorf("sessions kill of an unknown ID: exit %d %s", code, errb)
	}
	code, out, _ = runAdmin(t, "sessions", "--json", "--admin", sock)
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("after the kills: exit %d, want one session\n%s", code, out)
	}
	r.stop(t)
	if n := strings.Count(r.errb.String(), "reason=killed"); n != 2 {
		t.Errorf("%d usage records with reason killed, want 2:\n%s", n, r.errb)
	}
	if code, _, errb = runAdmin(t, "status", "--admin", sock); code != 1 || !strings.Contains(errb, "no server answers") {
		t.Errorf("status with no server: exit %d %s", code, errb)
	}
}

// TestAdminDrain: `icebreaker drain` makes the server refuse new
// allocations, fail /readyz through the status, and stop with exit 0 once
// the last allocation is deleted.
func TestAdminDrain(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "u:p", "--admin", sock)
	cfg := turnclient.Config{Server: r.endpoint(t, "udp").String(), Username: "u", Password: "p"}
	rl, err := turnclient.Allocate(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errb := runAdmin(t, "drain", "--timeout", "30s", "--wait=false", "--admin", sock)
	if code != 0 || !strings.Contains(out, "draining: 1 allocation(s)") {
		t.Fatalf("drain: exit %d %s%s", code, out, errb)
	}
	if code, out, _ := runAdmin(t, "status", "--admin", sock); code != 0 || !strings.Contains(out, "draining") {
		t.Errorf("status while draining: exit %d\n%s", code, out)
	}
	if _, err := turnclient.Allocate(t.Context(), cfg); !errors.Is(err, turnclient.ErrInsufficientCapacity) {
		t.Errorf("Allocate while draining: %v, want 508", err)
	}
	rl.Close()
	r.wait(t)
	if r.code != 0 || !strings.Contains(r.errb.String(), "turn allocation ended") || !strings.Contains(r.out.String(), "stopped") {
		t.Errorf("after the drain: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errb)
	}
}

// TestDrainAlternateServer: while a server drains with
// --alternate-server, a TURN client that asks it for an allocation gets
// 300 Try Alternate and ends up allocated on the alternate server.
func TestDrainAlternateServer(t *testing.T) {
	other := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "u:p")
	alt := other.endpoint(t, "udp")
	sock := filepath.Join(t.TempDir(), "a.sock")
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "u:p", "--admin", sock,
		"--alternate-server", alt.String())
	udp := r.endpoint(t, "udp")
	keep, err := turnclient.Allocate(t.Context(), turnclient.Config{Server: udp.String(), Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close() // holds the draining server open
	if code, out, errb := runAdmin(t, "drain", "--wait=false", "--admin", sock); code != 0 {
		t.Fatalf("drain: exit %d %s%s", code, out, errb)
	}
	rl, err := turnclient.Allocate(t.Context(), turnclient.Config{Server: udp.String(), Username: "u", Password: "p"})
	if err != nil {
		t.Fatalf("Allocate while draining with an alternate: %v", err)
	}
	defer rl.Close()
	if got := rl.Server(); got != alt {
		t.Errorf("allocated on %v, want the alternate %v", got, alt)
	}
}
