package userstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icebreaker-net/icebreaker/internal/pgtest"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

var _ turnauth.KeyLookup = (*PG)(nil)

func openPG(t *testing.T, dsn string) *PG {
	t.Helper()
	p, err := OpenPostgres(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// eventually polls cond until it holds or 10 s pass; it fails the test
// then. It bounds a wait for a notification, it measures nothing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConnected(t *testing.T, p *PG) {
	t.Helper()
	eventually(t, "the store listens", func() bool { return p.Stats().Connected })
}

func mustKey(t *testing.T, user, realm, pw string, alg stun.PasswordAlgorithm) []byte {
	t.Helper()
	k, err := stun.LongTermKey(alg, user, realm, pw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPGTwoNodes: a user added, changed and deleted through one node is in
// force on the other, whose cache (unknown users included) is invalidated
// by NOTIFY; a row written by plain SQL too.
func TestPGTwoNodes(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pg.Get(t))
	ctx := context.Background()
	a, b := openPG(t, dsn), openPG(t, dsn)
	waitConnected(t, a)
	waitConnected(t, b)

	// B learns that alice is unknown, and caches it.
	for range 2 {
		if _, err := b.Key(ctx, "alice", "r", stun.PasswordMD5); !errors.Is(err, turnauth.ErrUnknownUser) {
			t.Fatalf("B before add: %v, want unknown user", err)
		}
	}
	if st := b.Stats(); st.CacheHits != 1 || st.CacheMisses != 1 {
		t.Fatalf("B stats %+v: want the second lookup from the cache", st)
	}
	if err := a.Add(ctx, "r", "alice", "pw1"); err != nil {
		t.Fatal(err)
	}
	want := mustKey(t, "alice", "r", "pw1", stun.PasswordMD5)
	eventually(t, "B knows alice", func() bool {
		k, err := b.Key(ctx, "alice", "r", stun.PasswordMD5)
		return err == nil && bytes.Equal(k, want)
	})
	k, err := b.Key(ctx, "alice", "r", stun.PasswordSHA256)
	if err != nil || !bytes.Equal(k, mustKey(t, "alice", "r", "pw1", stun.PasswordSHA256)) {
		t.Fatalf("B SHA-256 key: %x, %v", k, err)
	}
	uh, _ := stun.Userhash("alice", "r")
	if name, err := b.ByUserhash(ctx, uh, "r"); err != nil || name != "alice" {
		t.Fatalf("B ByUserhash: %q, %v", name, err)
	}

	if err := a.SetPassword(ctx, "r", "alice", "pw2"); err != nil {
		t.Fatal(err)
	}
	want = mustKey(t, "alice", "r", "pw2", stun.PasswordMD5)
	eventually(t, "B has alice's new key", func() bool {
		k, err := b.Key(ctx, "alice", "r", stun.PasswordMD5)
		return err == nil && bytes.Equal(k, want)
	})
	if err := a.Delete(ctx, "r", "alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B forgets alice", func() bool {
		_, err := b.Key(ctx, "alice", "r", stun.PasswordMD5)
		_, herr := b.ByUserhash(ctx, uh, "r")
		return errors.Is(err, turnauth.ErrUnknownUser) && errors.Is(herr, turnauth.ErrUnknownUser)
	})

	// A row written by hand, not through a PG, notifies as well.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := b.Key(ctx, "bob", "r", stun.PasswordMD5); !errors.Is(err, turnauth.ErrUnknownUser) {
		t.Fatalf("bob before insert: %v", err)
	}
	bk := mustKey(t, "bob", "r", "pw", stun.PasswordMD5)
	if _, err := conn.Exec(ctx, `INSERT INTO icebreaker_users (realm, username, key_md5, userhash) VALUES ('r', 'bob', $1, $2)`, bk, []byte{1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B knows bob", func() bool {
		k, err := b.Key(ctx, "bob", "r", stun.PasswordMD5)
		return err == nil && bytes.Equal(k, bk)
	})

	if err := a.Add(ctx, "r", "bob", "x"); !errors.Is(err, ErrUserExists) {
		t.Fatalf("Add existing: %v", err)
	}
	if err := a.Delete(ctx, "r", "nobody"); !errors.Is(err, ErrNoUser) {
		t.Fatalf("Delete missing: %v", err)
	}
	users, err := a.List(ctx, "")
	if err != nil || len(users) != 1 || users[0].Username != "bob" {
		t.Fatalf("List: %v, %v", users, err)
	}
}

// TestPGOutage: with the database refusing connections, a cached user
// keeps working, an uncached one fails with an error that is not "unknown
// user", the outage is counted; after it the store reconnects.
func TestPGOutage(t *testing.T) {
	c := pg.Get(t)
	dsn := pgtest.NewDatabase(t, c)
	ctx := context.Background()
	p := openPG(t, dsn)
	waitConnected(t, p)
	if err := p.Add(ctx, "r", "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(ctx, "r", "carol", "pw"); err != nil {
		t.Fatal(err)
	}
	// Our own writes' notifications come back; let them pass, then cache alice.
	eventually(t, "both notifications arrive", func() bool { return p.Stats().Notified >= 2 })
	want := mustKey(t, "alice", "r", "pw", stun.PasswordMD5)
	if k, err := p.Key(ctx, "alice", "r", stun.PasswordMD5); err != nil || !bytes.Equal(k, want) {
		t.Fatalf("Key: %x, %v", k, err)
	}

	admin, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	db := dbName(t, dsn)
	setAllowed := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS "+map[bool]string{true: "true", false: "false"}[on]); err != nil {
			t.Fatal(err)
		}
		if !on {
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db); err != nil {
				t.Fatal(err)
			}
		}
	}
	setAllowed(false)
	eventually(t, "the outage is seen", func() bool { st := p.Stats(); return !st.Connected && st.Outages >= 1 })

	for range 3 {
		if k, err := p.Key(ctx, "alice", "r", stun.PasswordMD5); err != nil || !bytes.Equal(k, want) {
			t.Fatalf("cached user during the outage: %x, %v", k, err)
		}
	}
	_, err = p.Key(ctx, "carol", "r", stun.PasswordMD5)
	if !errors.Is(err, ErrStoreDown) || errors.Is(err, turnauth.ErrUnknownUser) {
		t.Fatalf("uncached user during the outage: %v, want ErrStoreDown", err)
	}
	if st := p.Stats(); st.LookupErrs == 0 {
		t.Fatalf("stats %+v: the failed lookup is not counted", st)
	}

	setAllowed(true)
	waitConnected(t, p)
	if _, err := p.Key(ctx, "carol", "r", stun.PasswordMD5); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Key(ctx, "alice", "r", stun.PasswordMD5); !errors.Is(err, ErrClosed) {
		t.Fatalf("Key after Close: %v", err)
	}
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// TestPGSchema: nodes opening a new database together create the schema
// once; a schema newer than the program is refused.
func TestPGSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pg.Get(t))
	ctx := context.Background()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			p, err := OpenPostgres(ctx, dsn, nil)
			if err == nil {
				p.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE icebreaker_schema SET version = 99"); err != nil {
		t.Fatal(err)
	}
	if p, err := OpenPostgres(ctx, dsn, nil); err == nil {
		p.Close()
		t.Fatal("opened a database with a newer schema")
	}
	if _, err := OpenPostgres(ctx, "postgres://x@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", nil); err == nil {
		t.Fatal("opened an unreachable database")
	}
}

// TestCoturnImport creates users with coturn's turnadmin, reads its
// SQLite database and imports them into both stores: the MD5 key matches,
// and there is no SHA-256 key until the password is set.
func TestCoturnImport(t *testing.T) {
	turnadmin := testutil.RequireBinary(t, "turnadmin")
	db := filepath.Join(t.TempDir(), "coturn.db")
	ctx := context.Background()
	for _, u := range [][3]string{{"alice", "example.org", "s3cret"}, {"bob", "other.example", "hunter2"}} {
		cmd := testutil.Command(ctx, turnadmin, "-a", "-b", db, "-u", u[0], "-r", u[1], "-p", u[2])
		cmd.Dir = t.TempDir() // turnadmin may write a log file
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("turnadmin: %v\n%s", err, out)
		}
	}
	users, skipped, err := ReadCoturn(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || len(skipped) != 0 {
		t.Fatalf("read %v, skipped %v", users, skipped)
	}
	stores := []Admin{open(t)}
	if c := pgOrNil(t); c != nil {
		stores = append(stores, openPG(t, pgtest.NewDatabase(t, c)))
	}
	for _, s := range stores {
		for _, u := range users {
			if err := s.ImportMD5(ctx, u.Realm, u.Username, u.KeyMD5); err != nil {
				t.Fatal(err)
			}
		}
		kl := s.(turnauth.KeyLookup)
		k, err := kl.Key(ctx, "alice", "example.org", stun.PasswordMD5)
		if err != nil || !bytes.Equal(k, mustKey(t, "alice", "example.org", "s3cret", stun.PasswordMD5)) {
			t.Fatalf("%s: imported key %x, %v", s.Path(), k, err)
		}
		if _, err := kl.Key(ctx, "alice", "example.org", stun.PasswordSHA256); !errors.Is(err, ErrNoUser) {
			t.Fatalf("%s: SHA-256 key of an imported user: %v", s.Path(), err)
		}
		if err := s.SetPassword(ctx, "example.org", "alice", "new"); err != nil {
			t.Fatal(err)
		}
		if _, err := kl.Key(ctx, "alice", "example.org", stun.PasswordSHA256); err != nil {
			t.Fatalf("%s: SHA-256 key after SetPassword: %v", s.Path(), err)
		}
		if err := s.ImportMD5(ctx, "r", "u", []byte{1, 2}); err == nil {
			t.Fatal("imported a short key")
		}
	}
}

// pgOrNil returns the shared cluster, or nil when PostgreSQL is missing
// outside CI (the SQLite half of a test still runs).
func pgOrNil(t *testing.T) *pgtest.Cluster {
	if _, err := os.Stat("/usr/lib/postgresql"); err != nil && !testutil.InCI() {
		t.Logf("PostgreSQL not installed: SQLite only")
		return nil
	}
	return pg.Get(t)
}

func TestParseCoturnKey(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"8b83b40c22906c0c67a3c5bcc491bc14", true},
		{"8b83b40c22906c0c67a3c5bcc491bc14   ", true},
		{"8b83b40c22906c0c67a3c5bcc491bc1", false},
		{"zz83b40c22906c0c67a3c5bcc491bc14", false},
		{"", false},
		{"8b83b40c22906c0c67a3c5bcc491bc148b83b40c22906c0c67a3c5bcc491bc14", false},
	} {
		k, err := ParseCoturnKey(tc.in)
		if (err == nil) != tc.ok || tc.ok && len(k) != 16 {
			t.Errorf("ParseCoturnKey(%q) = %x, %v", tc.in, k, err)
		}
	}
}

func FuzzParseCoturnKey(f *testing.F) {
	f.Add("8b83b40c22906c0c67a3c5bcc491bc14")
	f.Add("xyz")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseCoturnKey(s)
		if err != nil {
			return
		}
		if len(k) != 16 {
			t.Fatalf("key of %d bytes", len(k))
		}
		if k2, err := ParseCoturnKey(fmtHex(k)); err != nil || !bytes.Equal(k, k2) {
			t.Fatalf("round trip: %x %v", k2, err)
		}
	})
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestCoturnImportPostgres: coturn's own schema (its Debian package's
// schema.sql) in PostgreSQL, a user added by turnadmin -e (coturn's
// psql-userdb), read back by ReadCoturn.
func TestCoturnImportPostgres(t *testing.T) {
	turnadmin := testutil.RequireBinary(t, "turnadmin")
	schema, err := os.ReadFile("/usr/share/coturn/schema.sql")
	if err != nil {
		testutil.Unavailable(t, "coturn's schema: %v (install coturn: scripts/install-test-deps.sh)", err)
	}
	c := pg.Get(t)
	dsn := pgtest.NewDatabase(t, c)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(schema)); err != nil {
		t.Fatalf("coturn's schema.sql: %v", err)
	}
	cfg, _ := pgx.ParseConfig(dsn)
	connStr := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s", cfg.Port, cfg.Database, cfg.User)
	cmd := testutil.Command(ctx, turnadmin, "-a", "-e", connStr, "-u", "dave", "-r", "example.org", "-p", "daves-pw")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("turnadmin -e: %v\n%s", err, out)
	}
	// Rows that cannot be imported: a SHA-256-length key, an empty realm.
	if _, err := conn.Exec(ctx, `INSERT INTO turnusers_lt (realm, name, hmackey) VALUES
		('example.org', 'eve', repeat('ab', 32)), ('', 'frank', repeat('ab', 16))`); err != nil {
		t.Fatal(err)
	}
	users, skipped, err := ReadCoturn(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 2 {
		t.Errorf("skipped %+v, want eve and frank", skipped)
	}
	if len(users) != 1 || users[0].Username != "dave" || users[0].Realm != "example.org" ||
		!bytes.Equal(users[0].KeyMD5, mustKey(t, "dave", "example.org", "daves-pw", stun.PasswordMD5)) {
		t.Fatalf("read %+v, skipped %v", users, skipped)
	}
}
