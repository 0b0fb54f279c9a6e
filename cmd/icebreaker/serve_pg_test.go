package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/metrics"
	"github.com/icebreaker-net/icebreaker/internal/pgtest"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/stun"
)

var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// runUserCmd runs `icebreaker user args...` and fails the test unless it
// succeeds.
func runUserCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := runUser(t.Context(), args, &out, &errb); err != nil {
		t.Fatalf("icebreaker user %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// TestServeTwoNodesPostgres runs two serve nodes that share a PostgreSQL
// user store and the nonce secret: a user added with `icebreaker user add`
// (after node B has cached it as unknown) authenticates on both, a nonce
// minted by A is accepted by B, and users imported from coturn's database
// (made by coturn's turnadmin) authenticate with their old passwords.
func TestServeTwoNodesPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pg.Get(t))
	setServeEnv(t, "ICEBREAKER_TURN_NONCE_SECRET=shared-nonce-secret-for-both-nodes")
	b := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--realm", "r", "--user-db", dsn,
		"--allow-peer", "127.0.0.0/8") // for turnutils_uclient's echo peer
	bAddr := b.endpoint(t, "udp")
	// A holds one allocation at most and sends the next to B.
	file := filepath.Join(t.TempDir(), "a.yaml")
	writeFile(t, file, fmt.Sprintf(`listen: ["127.0.0.1:0"]
turn:
  realm: r
  user_db: %q
  quotas: {total_allocations: 1, overflow_alternates: [%q]}
`, dsn, bAddr))
	a := startServe(t, "--config", file)
	aAddr := a.endpoint(t, "udp")
	storeLine := regexp.MustCompile(`TURN: 0 static user\(s\), 0 in the PostgreSQL user store postgres://`)
	a.waitFor(t, storeLine)
	b.waitFor(t, storeLine)

	// B learns that alice is unknown (and caches that).
	if code := errorCode(t, dialTURN(t, bAddr, "alice", "pw").tryAllocate()); code != stun.CodeUnauthorized {
		t.Fatalf("B before the user exists: %d, want 401", code)
	}
	if out := runUserCmd(t, "add", "--db", dsn, "--realm", "r", "--password", "pw", "alice"); !strings.Contains(out, `added user "alice"`) {
		t.Errorf("user add printed %q", out)
	}
	// The NOTIFY reaches B asynchronously: retry (bounded) until it has.
	deadline := time.Now().Add(serveTimeout)
	for {
		c := dialTURN(t, bAddr, "alice", "pw")
		code := errorCode(t, c.tryAllocate())
		if code == 0 {
			break
		}
		if code != stun.CodeUnauthorized || time.Now().After(deadline) {
			t.Fatalf("B after user add: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dialTURN(t, aAddr, "alice", "pw").allocate() // A is now full

	// A nonce minted by A is accepted by B. The nonce is bound to the
	// client's transport address, so the client asks B from the same port.
	ca := dialTURN(t, aAddr, "alice", "pw")
	ca.challenge()
	local := ca.local()
	ca.conn.Close()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(local), net.UDPAddrFromAddrPort(bAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cb := &turnClient{t: t, conn: conn, user: "alice", pass: "pw", realm: ca.realm, nonce: ca.nonce, key: ca.key}
	if m := cb.do(stun.MethodAllocate, allocateAttrs); errorCode(t, m) != 0 {
		t.Fatalf("B refused A's nonce: %d", errorCode(t, m))
	}

	// coturn's users move without a password reset.
	turnadmin := testutil.RequireBinary(t, "turnadmin")
	coturnDB := filepath.Join(t.TempDir(), "coturn.db")
	cmd := testutil.Command(t.Context(), turnadmin, "-a", "-b", coturnDB, "-u", "carol", "-r", "r", "-p", "carols-pw")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("turnadmin: %v\n%s", err, out)
	}
	if out := runUserCmd(t, "import", "--from-coturn", coturnDB, "--db", dsn); !strings.Contains(out, "imported 1 user(s)") {
		t.Errorf("user import printed %q", out)
	}
	dialTURN(t, bAddr, "carol", "carols-pw").allocate()
	uclientImported(t, bAddr, "carol", "carols-pw")
	if code := errorCode(t, dialTURN(t, aAddr, "carol", "wrong").tryAllocate()); code != stun.CodeUnauthorized {
		t.Errorf("imported user with a wrong password: %d, want 401", code)
	}
	// A is over total_allocations: 300 to B, signed.
	over := dialTURN(t, aAddr, "carol", "carols-pw")
	m := over.tryAllocate()
	if code := errorCode(t, m); code != stun.CodeTryAlternate {
		t.Fatalf("Allocate on the full node: %d, want 300", code)
	}
	if alt, err := m.Address(stun.AttrAlternateServer); err != nil || alt != bAddr {
		t.Errorf("ALTERNATE-SERVER %v, %v; want %v", alt, err, bAddr)
	}
	if err := m.CheckIntegrity(over.key); err != nil {
		t.Errorf("300: %v", err)
	}
	list := runUserCmd(t, "list", "--db", dsn)
	for _, u := range []string{"alice", "carol"} {
		if !strings.Contains(list, u) {
			t.Errorf("user list lacks %s:\n%s", u, list)
		}
	}
}

// uclientImported relays through server with coturn's own client,
// turnutils_uclient, as user (an imported coturn user: MD5 only), to
// turnutils_peer, and requires every packet back.
func uclientImported(t *testing.T, server netip.AddrPort, user, pass string) {
	t.Helper()
	uclient := testutil.RequireBinary(t, "turnutils_uclient")
	peerBin := testutil.RequireBinary(t, "turnutils_peer")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	peerPort := strconv.Itoa(testutil.FreePort(t))
	testutil.Start(t, testutil.Command(ctx, peerBin, "-L", "127.0.0.1", "-p", peerPort))
	out, err := testutil.Command(ctx, uclient, "-u", user, "-w", pass, "-e", "127.0.0.1", "-r", peerPort,
		"-n", "10", "-m", "1", "-l", "100", "-z", "5", "-c", "-s",
		"-p", strconv.Itoa(int(server.Port())), server.Addr().String()).CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("turnutils_uclient: %v\n%s", err, out)
	}
	lost := regexp.MustCompile(`Total lost packets (\d+) \(`).FindSubmatch(out)
	sent := regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`).FindSubmatch(out)
	if lost == nil || sent == nil {
		t.Fatalf("turnutils_uclient as %s: no totals in the output:\n%s", user, out)
	}
	if string(lost[1]) != "0" || string(sent[1]) != "10" || string(sent[2]) != "10" {
		t.Errorf("turnutils_uclient as %s: lost %s; sent %s, received %s, want 10 and 10:\n%s", user, lost[1], sent[1], sent[2], out)
	}
}

// TestPGMetrics: the PostgreSQL store's counters are valid exposition
// text with their values.
func TestPGMetrics(t *testing.T) {
	b, err := metrics.Append(nil, pgMetrics(userstore.PGStats{CacheHits: 7, CacheMisses: 3, LookupErrs: 2, Outages: 1, Notified: 5, Connected: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`icebreaker_userstore_lookups_total{cache="hit"} 7`, `icebreaker_userstore_lookups_total{cache="miss"} 3`,
		"icebreaker_userstore_lookup_errors_total 2", "icebreaker_userstore_outages_total 1",
		"icebreaker_userstore_notifications_total 5", "icebreaker_userstore_connected 1",
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("no %q in\n%s", want, b)
		}
	}
}

// TestUserImportErrors: `user import` without a source, with a missing
// file, with a file that is not coturn's, and with stray arguments fails
// with a clear error and creates no store.
func TestUserImportErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "users.db")
	notCoturn := filepath.Join(dir, "other.db")
	if _, err := userstore.Open(notCoturn); err != nil { // an SQLite file without turnusers_lt
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--db", db}, "--from-coturn is required"},
		{[]string{"--db", db, "--from-coturn", filepath.Join(dir, "missing.db")}, "no such file"},
		{[]string{"--db", db, "--from-coturn", notCoturn}, "turnusers_lt"},
		{[]string{"--db", db, "--from-coturn", notCoturn, "extra"}, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		err := runUser(t.Context(), append([]string{"import"}, tc.args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("user import %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a failed import created the user store")
	}
}

// TestServePostgresUnreachable: a node whose PostgreSQL store cannot be
// reached at start refuses to start, naming the store without its
// password.
func TestServePostgresUnreachable(t *testing.T) {
	port := testutil.FreePort(t) // nothing listens on it over TCP
	dsn := fmt.Sprintf("postgres://icebreaker:hunter2@127.0.0.1:%d/icebreaker?sslmode=disable&connect_timeout=2", port)
	code, _, errb := runServeOnce(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", dsn)
	if code == 0 || !strings.Contains(errb, "turn.user_db") || !strings.Contains(errb, "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("serve with an unreachable store: exit %d, stderr:\n%s", code, errb)
	}
	if strings.Contains(errb, "hunter2") {
		t.Errorf("the error shows the password:\n%s", errb)
	}
}
