package main

import (
	"bytes"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/ibserver"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// TestAttacks runs every attack of the client, scaled down but past each
// bound, against the server in process with the daemon's quotas, and
// checks what the server answered.
func TestAttacks(t *testing.T) {
	srv, err := ibserver.Start(ibserver.Config{
		Listen:     netip.MustParseAddrPort("127.0.0.1:0"),
		Users:      map[string]string{"mallory": "m", "alice": "a", "trudy": "t"},
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		UDPSockets: 1,
		Quotas: &turnserver.Quotas{AllocationsPerUser: 10, PermissionsPerAllocation: 128,
			ConnectsPerAllocation: 4, ConnectsPerUser: 6},
		TCP:         true,
		ErrorRate:   50,
		RESTSecrets: []string{"s3cret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var out bytes.Buffer
	err = run([]string{"-server", srv.Addr().String(), "-user", "mallory:m", "-victim", "alice:a",
		"-perm-requests", "5", "-perm-peers", "60", "-junk-rate", "2000", "-junk-for", "200ms", "-pings", "20",
		"-reserve-loops", "15", "-reflect-flood", "300", "-reflect-pause", "0s"}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	o := out.String()
	// 5 x 60 peers: two requests fit under 128, the rest get 508; then
	// 16 more at a time do not fit either.
	if !strings.Contains(o, "ok=2 508=3:") && !strings.Contains(o, "ok=2 508=3;") {
		t.Errorf("permission flood not capped")
	}
	if !strings.Contains(o, "Allocate from another port: 438; Refresh 0 after re-Allocate: 438, allocation survived: true") {
		t.Errorf("replays not refused")
	}
	if m := regexp.MustCompile(`\(Allocate EVEN-PORT R=1, Refresh 0\): ok=(\d+) 486=(\d+)`).FindStringSubmatch(o); m == nil {
		t.Errorf("reservations not bounded by the quota")
	} else if ok, _ := strconv.Atoi(m[1]); ok > 10 {
		t.Errorf("%d reservations held with a quota of 10", ok)
	}
	if !strings.Contains(o, "another user's Allocate: success") || strings.Contains(o, " 0-byte answer") {
		t.Errorf("another user starved")
	}
	if m := regexp.MustCompile(`flood of 300 bare Allocates from one address: (\d+) answered`).FindStringSubmatch(o); m == nil {
		t.Errorf("no reflection flood result")
	} else if n, _ := strconv.Atoi(m[1]); n > 150 {
		t.Errorf("%d of 300 answered with a limit of 50/s, burst 100", n)
	}
	// REST: a stranger cannot tell an expired REST username from an
	// unknown user; a call outlives its credential.
	out.Reset()
	if err := run([]string{"-server", srv.Addr().String(), "-user", "trudy:t", "-attacks", "rest",
		"-rest-secret", "s3cret", "-rest-life", "1s"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "guessed secret: 401 Unauthorized; unknown user: 401 Unauthorized; expired with the right secret: 401 Credentials Expired") ||
		!strings.Contains(out.String(), "after it expired: Refresh success, CreatePermission success") {
		t.Errorf("REST credentials: wrong answers")
	}

	// A short churn: allocations made and deleted with a permission and a
	// channel each, and none left behind.
	held := srv.Stats().Allocations
	out.Reset()
	if err := run([]string{"-server", srv.Addr().String(), "-user", "alice:a", "-attacks", "churn",
		"-churn-clients", "8", "-churn-for", "300ms"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if !regexp.MustCompile(`round 1: 8 made, 8 deleted, 0 failed`).MatchString(out.String()) {
		t.Errorf("churn failed")
	}
	st := srv.Stats()
	if st.Allocations != held {
		t.Errorf("%d allocations after the churn, %d before", st.Allocations, held)
	}
	// The Connect flood: 3 TCP allocations x 5 peers that never answer;
	// 4 then 2 wait (per allocation, then per user), the rest are refused.
	out.Reset()
	if err := run([]string{"-server", srv.Addr().String(), "-tcp-server", srv.TCPAddr().String(), "-user", "trudy:t",
		"-attacks", "connect", "-connect-allocations", "3", "-connect-peers", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "15 sent, answered within 1 s: 486=8 508=1 ") ||
		!strings.Contains(out.String(), "a fresh TCP client answered: true") {
		t.Errorf("Connect flood not bounded, or the listener stopped accepting")
	}

	if st.RefusedPermissions != 4 || st.NonceReplays == 0 || st.RefusedAllocationsPerUser == 0 || st.ErrorsRateLimited == 0 {
		t.Errorf("stats %+v", st)
	}
}
