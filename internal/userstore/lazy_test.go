package userstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

var (
	_ turnauth.KeyLookup      = (*Lazy)(nil)
	_ turnauth.UserhashLookup = (*Lazy)(nil)
)

// TestLazyOpensWhenCreated checks that a Lazy finds nobody and creates
// nothing while the file is missing, and serves the users once another
// process (here another Store) created it.
func TestLazyOpensWhenCreated(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	l, err := OpenLazy(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Key(ctx, "alice", "r", stun.PasswordSHA256); !errors.Is(err, turnauth.ErrUnknownUser) {
		t.Fatalf("Key before the store exists: %v", err)
	}
	if _, err := l.ByUserhash(ctx, [32]byte{}, "r"); !errors.Is(err, turnauth.ErrUnknownUser) {
		t.Fatalf("ByUserhash before the store exists: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the Lazy created its file: %v", err)
	}
	if l.Store() != nil || l.Path() != path {
		t.Fatalf("Store() = %v, Path() = %q", l.Store(), l.Path())
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "r", "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want, _ := stun.LongTermKey(stun.PasswordSHA256, "alice", "r", "secret")
	got, err := l.Key(ctx, "alice", "r", stun.PasswordSHA256)
	if err != nil || string(got) != string(want) {
		t.Fatalf("Key after the store was created: %x, %v", got, err)
	}
	h, _ := stun.Userhash("alice", "r")
	if name, err := l.ByUserhash(ctx, h, "r"); err != nil || name != "alice" {
		t.Fatalf("ByUserhash = %q, %v", name, err)
	}
	if l.Store() == nil {
		t.Fatal("Store() is nil after a lookup opened it")
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Key(ctx, "alice", "r", stun.PasswordSHA256); !errors.Is(err, turnauth.ErrUnknownUser) {
		t.Fatalf("Key after Close: %v", err)
	}
}

// TestLazyRecheck checks that a missing file is looked for at most once
// per interval.
func TestLazyRecheck(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	l, err := OpenLazy(path, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Key(ctx, "alice", "r", stun.PasswordMD5) // looks, finds nothing
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Add(ctx, "r", "alice", "secret")
	s.Close()
	if _, err := l.Key(ctx, "alice", "r", stun.PasswordMD5); !errors.Is(err, turnauth.ErrUnknownUser) {
		t.Fatalf("looked again within the interval: %v", err)
	}
}

// TestOpenLazyExisting checks that an existing store opens at once, and
// that a broken one is an error.
func TestOpenLazyExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	l, err := OpenLazy(path, time.Hour, nil)
	if err != nil || l.Store() == nil {
		t.Fatalf("OpenLazy(existing) = %v, %v", l, err)
	}
	l.Close()

	bad := filepath.Join(dir, "bad.db")
	if err := os.WriteFile(bad, []byte("not a database, but long enough to be read as a header........................................................"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := OpenLazy(bad, 0, nil); err == nil {
		l.Close()
		t.Fatal("OpenLazy accepted a file that is not a database")
	}
}
