package userstore

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "sub", "dir", "users.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Compile-time checks: a Store plugs into turnauth.
var (
	_ turnauth.KeyLookup      = (*Store)(nil)
	_ turnauth.UserhashLookup = (*Store)(nil)
)

func TestAddKeyDelete(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Add(ctx, "example.org", "alice", "wonderland"); err != nil {
		t.Fatalf("Add: %v", err)
	}
	for _, alg := range []stun.PasswordAlgorithm{stun.PasswordMD5, stun.PasswordSHA256} {
		got, err := s.Key(ctx, "alice", "example.org", alg)
		want, _ := stun.LongTermKey(alg, "alice", "example.org", "wonderland")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Key(%v) = %x, %v; want %x", alg, got, err, want)
		}
	}
	if _, err := s.Key(ctx, "alice", "other.org", stun.PasswordMD5); !errors.Is(err, turnauth.ErrUnknownUser) {
		t.Errorf("Key in another realm: %v", err)
	}
	if _, err := s.Key(ctx, "alice", "example.org", 9); err == nil {
		t.Error("Key with an unknown algorithm: no error")
	}
	h, _ := stun.Userhash("alice", "example.org")
	if name, err := s.ByUserhash(ctx, h, "example.org"); err != nil || name != "alice" {
		t.Errorf("ByUserhash = %q, %v", name, err)
	}
	if _, err := s.ByUserhash(ctx, h, "other.org"); !errors.Is(err, ErrNoUser) {
		t.Errorf("ByUserhash in another realm: %v", err)
	}
	if err := s.Add(ctx, "example.org", "alice", "again"); !errors.Is(err, ErrUserExists) {
		t.Errorf("second Add: %v, want ErrUserExists", err)
	}
	// The same name in another realm is another user.
	if err := s.Add(ctx, "other.org", "alice", "x"); err != nil {
		t.Errorf("Add in another realm: %v", err)
	}
	if err := s.Delete(ctx, "example.org", "alice"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "example.org", "alice"); !errors.Is(err, ErrNoUser) {
		t.Errorf("second Delete: %v, want ErrNoUser", err)
	}
	if _, err := s.Key(ctx, "alice", "example.org", stun.PasswordMD5); !errors.Is(err, ErrNoUser) {
		t.Errorf("Key after Delete: %v", err)
	}
}

func TestNoPlainPassword(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "users.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const password = "very-distinctive-password-9f8e7d"
	if err := s.Add(ctx, "r", "u", password); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "r", "u", password+"2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "users.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s contains the plain password", f)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.SetPassword(ctx, "r", "ghost", "x"); !errors.Is(err, ErrNoUser) {
		t.Errorf("SetPassword of a missing user: %v", err)
	}
	if err := s.Add(ctx, "r", "bob", "old"); err != nil {
		t.Fatal(err)
	}
	before, _ := s.List(ctx, "r")
	if err := s.SetPassword(ctx, "r", "bob", "new"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Key(ctx, "bob", "r", stun.PasswordSHA256)
	want, _ := stun.LongTermKey(stun.PasswordSHA256, "bob", "r", "new")
	if !bytes.Equal(got, want) {
		t.Error("key not changed")
	}
	after, _ := s.List(ctx, "r")
	if len(after) != 1 || !after[0].Created.Equal(before[0].Created) || after[0].Updated.Before(before[0].Updated) {
		t.Errorf("List before %+v after %+v", before, after)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if users, err := s.List(ctx, ""); err != nil || len(users) != 0 {
		t.Fatalf("empty List = %v, %v", users, err)
	}
	for _, u := range []struct{ realm, name string }{{"b.org", "zed"}, {"a.org", "mia"}, {"b.org", "amy"}} {
		if err := s.Add(ctx, u.realm, u.name, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range all {
		got = append(got, u.Realm+"/"+u.Username)
		if u.Created.IsZero() || time.Since(u.Created) > time.Hour {
			t.Errorf("%s created %v", u.Username, u.Created)
		}
	}
	if want := "[a.org/mia b.org/amy b.org/zed]"; sprint(got) != want {
		t.Errorf("List() = %v, want %v", got, want)
	}
	b, err := s.List(ctx, "b.org")
	if err != nil || len(b) != 2 || b[0].Username != "amy" {
		t.Errorf("List(b.org) = %+v, %v", b, err)
	}
}

func sprint(s []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	b.WriteByte(']')
	return b.String()
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	tests := []struct{ name, realm, user, password string }{
		{"empty user", "r", "", "pw"},
		{"empty realm", "", "u", "pw"},
		{"empty password", "r", "u", ""},
		{"control char", "r", "a\nb", "pw"},
		{"not UTF-8", "r", "a\xffb", "pw"},
		{"too long", "r", string(bytes.Repeat([]byte("u"), 600)), "pw"},
		{"password with control char", "r", "u", "p\x00w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Add(ctx, tt.realm, tt.user, tt.password); err == nil {
				t.Error("Add: no error")
			}
		})
	}
	if users, _ := s.List(ctx, ""); len(users) != 0 {
		t.Errorf("bad input stored users: %+v", users)
	}
}

func TestReopenAndClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd ?#% name", "users.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "r", "u", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Key(ctx, "u", "r", stun.PasswordMD5); !errors.Is(err, ErrClosed) {
		t.Errorf("Key after Close: %v", err)
	}
	if err := s.Add(ctx, "r", "v", "pw"); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Key(ctx, "u", "r", stun.PasswordMD5); err != nil {
		t.Errorf("Key after reopen: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\"): no error")
	}
	// A directory where the file should be.
	dir := t.TempDir()
	if _, err := Open(dir); err == nil {
		t.Error("Open(directory): no error")
	}
	// Not a database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not sqlite "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(junk); err == nil {
		s.Close()
		t.Error("Open(junk): no error")
	}
}

// TestConcurrentStores has two Stores on one file, as `icebreaker user`
// beside a running server: writes on one are seen by the other, and
// concurrent writers wait on the busy timeout instead of failing.
func TestConcurrentStores(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		for j, s := range []*Store{a, b} {
			wg.Go(func() {
				errs <- s.Add(ctx, "r", string(rune('a'+j))+string(rune('a'+i)), "pw")
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	users, err := b.List(ctx, "r")
	if err != nil || len(users) != 40 {
		t.Errorf("List = %d users, %v", len(users), err)
	}
}

// TestAuthenticate runs a full long-term credential exchange against a
// Store through turnauth.
func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Add(ctx, "example.org", "alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	a, err := turnauth.New(turnauth.Config{Realm: "example.org", Users: s})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	now := time.Unix(1_700_000_000, 0)
	typ := stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}

	// Challenge.
	var m stun.Message
	b := stun.AppendHeader(nil, typ, stun.NewTransactionID())
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	_, c := a.Authenticate(ctx, &m, turnauth.Client{Addr: from}, now)
	if c == nil || c.Code != 401 {
		t.Fatalf("challenge: %+v", c)
	}
	eb := a.AppendChallenge(stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassError}, m.TransactionID), c, turnauth.Client{Addr: from}, now)
	var em stun.Message
	if err := em.Parse(eb); err != nil {
		t.Fatal(err)
	}
	nonce, _ := em.Nonce()

	for _, tt := range []struct {
		name     string
		userhash bool
		password string
		ok       bool
	}{
		{"username", false, "wonderland", true},
		{"userhash", true, "wonderland", true},
		{"wrong password", false, "x", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := stun.AppendHeader(nil, typ, stun.NewTransactionID())
			if tt.userhash {
				h, _ := stun.Userhash("alice", "example.org")
				b = stun.AppendAttr(b, stun.AttrUserhash, h[:])
			} else {
				b = stun.AppendAttrString(b, stun.AttrUsername, "alice")
			}
			b = stun.AppendAttrString(b, stun.AttrRealm, "example.org")
			b = stun.AppendAttrString(b, stun.AttrNonce, nonce)
			key, _ := stun.LongTermKey(stun.PasswordMD5, "alice", "example.org", tt.password)
			b = stun.AppendMessageIntegrity(b, key)
			var m stun.Message
			if err := m.Parse(b); err != nil {
				t.Fatal(err)
			}
			res, c := a.Authenticate(ctx, &m, turnauth.Client{Addr: from}, now)
			if tt.ok && (c != nil || res.Username != "alice") {
				t.Fatalf("Authenticate = %+v, %+v", res, c)
			}
			if !tt.ok && (c == nil || c.Code != 401) {
				t.Fatalf("Authenticate = %+v, want 401", c)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("ICEBREAKER_DATA_DIR", "/srv/ice")
	if p, err := DefaultPath(); err != nil || p != "/srv/ice/users.db" {
		t.Errorf("with ICEBREAKER_DATA_DIR: %q, %v", p, err)
	}
	t.Setenv("ICEBREAKER_DATA_DIR", "")
	t.Setenv("XDG_DATA_HOME", "/home/x/.data")
	t.Setenv("HOME", "/home/x")
	p, err := DefaultPath()
	want := "/home/x/.data/icebreaker/users.db"
	if os.Geteuid() == 0 {
		want = "/var/lib/icebreaker/users.db"
	}
	if err != nil || p != want {
		t.Errorf("DefaultPath = %q, %v; want %q", p, err, want)
	}
	if os.Geteuid() != 0 {
		t.Setenv("XDG_DATA_HOME", "")
		if p, err := DefaultPath(); err != nil || p != "/home/x/.local/share/icebreaker/users.db" {
			t.Errorf("without XDG_DATA_HOME: %q, %v", p, err)
		}
	}
}
