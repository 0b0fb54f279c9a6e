package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/stun"
)

// runCLI runs one icebreaker command line and returns its exit status and
// output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// storedKey opens the database and returns alice's MD5 key in realm.
func storedKey(t *testing.T, db, user, realm string) []byte {
	t.Helper()
	s, err := userstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.Key(context.Background(), user, realm, stun.PasswordMD5)
	if err != nil {
		t.Fatalf("Key(%s, %s): %v", user, realm, err)
	}
	return k
}

func md5Key(t *testing.T, user, realm, password string) []byte {
	t.Helper()
	k, err := stun.LongTermKey(stun.PasswordMD5, user, realm, password)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "data", "users.db")

	code, out, errOut := runCLI(t, "user", "add", "--db", db, "--realm", "example.org", "--password", "s3cret-pw", "alice")
	if code != 0 {
		t.Fatalf("add: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "alice") || strings.Contains(out+errOut, "s3cret-pw") {
		t.Errorf("add printed %q / %q", out, errOut)
	}
	if got, want := storedKey(t, db, "alice", "example.org"), md5Key(t, "alice", "example.org", "s3cret-pw"); !bytes.Equal(got, want) {
		t.Errorf("stored key %x, want %x", got, want)
	}

	// Flags after the username work too; the default realm applies.
	if code, _, errOut := runCLI(t, "user", "add", "bob", "--db", db, "--password", "pw"); code != 0 {
		t.Fatalf("add bob: exit %d, %q", code, errOut)
	}
	storedKey(t, db, "bob", defaultUserRealm)

	code, _, errOut = runCLI(t, "user", "add", "--db", db, "--realm", "example.org", "--password", "x", "alice")
	if code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("duplicate add: exit %d, %q", code, errOut)
	}

	code, out, _ = runCLI(t, "user", "list", "--db", db)
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REALM") ||
		!strings.Contains(lines[1], "example.org") || !strings.Contains(lines[1], "alice") ||
		!strings.Contains(lines[2], defaultUserRealm) || !strings.Contains(lines[2], "bob") {
		t.Errorf("list:\n%s", out)
	}
	code, out, _ = runCLI(t, "user", "list", "--db", db, "--realm", "example.org")
	if code != 0 || strings.Contains(out, "bob") || !strings.Contains(out, "alice") {
		t.Errorf("list --realm: exit %d\n%s", code, out)
	}

	code, _, errOut = runCLI(t, "user", "passwd", "--db", db, "--realm", "example.org", "--password", "n3w", "alice")
	if code != 0 {
		t.Fatalf("passwd: exit %d, %q", code, errOut)
	}
	if got, want := storedKey(t, db, "alice", "example.org"), md5Key(t, "alice", "example.org", "n3w"); !bytes.Equal(got, want) {
		t.Error("passwd did not change the key")
	}
	code, _, errOut = runCLI(t, "user", "passwd", "--db", db, "--password", "x", "carol")
	if code != 1 || !strings.Contains(errOut, `no user "carol"`) {
		t.Errorf("passwd of a missing user: exit %d, %q", code, errOut)
	}

	if code, _, errOut := runCLI(t, "user", "del", "--db", db, "--realm", "example.org", "alice"); code != 0 {
		t.Fatalf("del: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "user", "del", "--db", db, "--realm", "example.org", "alice")
	if code != 1 || !strings.Contains(errOut, `no user "alice" in realm "example.org"`) {
		t.Errorf("second del: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "user", "rm", "--db", db, "bob"); code != 0 {
		t.Fatalf("rm: exit %d, %q", code, errOut)
	}
	code, out, errOut = runCLI(t, "user", "list", "--db", db)
	if code != 0 || out != "" || !strings.Contains(errOut, "no users") {
		t.Errorf("empty list: exit %d, %q, %q", code, out, errOut)
	}
}

// TestUserPasswordStdin swaps userStdin, so it does not run in parallel.
func TestUserPasswordStdin(t *testing.T) {
	db := filepath.Join(t.TempDir(), "users.db")
	old := userStdin
	t.Cleanup(func() { userStdin = old })

	userStdin = strings.NewReader("from-stdin\r\nsecond line ignored\n")
	code, out, errOut := runCLI(t, "user", "add", "--db", db, "--password-stdin", "dave")
	if code != 0 {
		t.Fatalf("add: exit %d, %q", code, errOut)
	}
	if strings.Contains(out+errOut, "from-stdin") {
		t.Error("password echoed")
	}
	if got, want := storedKey(t, db, "dave", defaultUserRealm), md5Key(t, "dave", defaultUserRealm, "from-stdin"); !bytes.Equal(got, want) {
		t.Error("wrong key for the password read from stdin")
	}

	userStdin = strings.NewReader("no-newline")
	if code, _, errOut := runCLI(t, "user", "passwd", "--db", db, "--password-stdin", "dave"); code != 0 {
		t.Fatalf("passwd: exit %d, %q", code, errOut)
	}
	if got, want := storedKey(t, db, "dave", defaultUserRealm), md5Key(t, "dave", defaultUserRealm, "no-newline"); !bytes.Equal(got, want) {
		t.Error("wrong key after passwd from stdin")
	}

	userStdin = strings.NewReader("\n")
	if code, _, errOut := runCLI(t, "user", "passwd", "--db", db, "--password-stdin", "dave"); code != 1 || !strings.Contains(errOut, "empty password") {
		t.Errorf("empty stdin: exit %d, %q", code, errOut)
	}
}

func TestUserUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "users.db")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", []string{"user"}, 2, "missing user command"},
		{"unknown command", []string{"user", "frobnicate"}, 2, "unknown user command"},
		{"no username", []string{"user", "add", "--db", db, "--password", "p"}, 2, "want one USERNAME"},
		{"two usernames", []string{"user", "del", "--db", db, "a", "b"}, 2, "want one USERNAME"},
		{"no password", []string{"user", "add", "--db", db, "alice"}, 2, "--password-stdin"},
		{"both passwords", []string{"user", "add", "--db", db, "--password", "p", "--password-stdin", "alice"}, 2, "exclude"},
		{"empty realm", []string{"user", "add", "--db", db, "--realm", "", "--password", "p", "alice"}, 2, "--realm is empty"},
		{"bad username", []string{"user", "add", "--db", db, "--password", "p", "a\tb"}, 2, "control character"},
		{"list argument", []string{"user", "list", "--db", db, "extra"}, 2, "unexpected argument"},
		{"unknown flag", []string{"user", "list", "--frob"}, 2, "frob"},
		{"del without database", []string{"user", "del", "--db", filepath.Join(dir, "none.db"), "alice"}, 1, "no user database"},
		{"list without database", []string{"user", "list", "--db", filepath.Join(dir, "none.db")}, 1, "no user database"},
		{"database is a directory", []string{"user", "add", "--db", dir, "--password", "p", "alice"}, 1, "userstore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); err == nil {
		t.Error("del/list created a database")
	}
	code, out, _ := runCLI(t, "user", "help")
	if code != 0 || !strings.Contains(out, "passwd") {
		t.Errorf("user help: exit %d, %q", code, out)
	}
}

func TestUserDefaultPath(t *testing.T) {
	// t.Setenv forbids t.Parallel.
	dir := t.TempDir()
	t.Setenv("ICEBREAKER_DATA_DIR", dir)
	if code, out, errOut := runCLI(t, "user", "add", "--password", "p", "erin"); code != 0 || !strings.Contains(out, dir) {
		t.Fatalf("add: exit %d, %q, %q", code, out, errOut)
	}
	storedKey(t, filepath.Join(dir, "users.db"), "erin", defaultUserRealm)
}
