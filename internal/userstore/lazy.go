package userstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// Lazy is the user store at a path for a server that must not create it:
// it is opened when its file exists, at OpenLazy or at the first lookup
// after `icebreaker user add` created it (looked for at most once per
// recheck interval). Until then every user is unknown. Lazy implements
// turnauth.KeyLookup and turnauth.UserhashLookup. It is safe for
// concurrent use; the zero value is not usable: call OpenLazy.
type Lazy struct {
	path    string
	recheck time.Duration
	log     *slog.Logger
	s       atomic.Pointer[Store]

	mu        sync.Mutex // guards the fields below and opening
	nextCheck time.Time
	closed    bool
}

// OpenLazy opens the store at path if its file exists, and otherwise
// returns a Lazy that looks for the file on lookups, at most once per
// recheck (0: at every lookup). It fails only when an existing file
// cannot be opened, so that a broken store stops a server at start.
// logger receives the store's opening and later failures to open it; nil
// is silent. The caller must Close the Lazy.
func OpenLazy(path string, recheck time.Duration, logger *slog.Logger) (*Lazy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Lazy{path: path, recheck: recheck, log: logger}
	if _, err := os.Stat(path); err == nil {
		s, err := Open(path)
		if err != nil {
			return nil, err
		}
		l.s.Store(s)
	}
	return l, nil
}

// Path returns the database file's path.
func (l *Lazy) Path() string { return l.path }

// Store returns the open store, or nil while its file has not been found
// (and after Close). It does not look for the file itself.
func (l *Lazy) Store() *Store { return l.s.Load() }

// get returns the open store, looking for its file when it is due, or nil.
func (l *Lazy) get() *Store {
	if s := l.s.Load(); s != nil {
		return s
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.s.Load(); s != nil || l.closed {
		return s
	}
	now := time.Now()
	if now.Before(l.nextCheck) {
		return nil
	}
	l.nextCheck = now.Add(l.recheck)
	if _, err := os.Stat(l.path); err != nil {
		return nil
	}
	s, err := Open(l.path)
	if err != nil {
		l.log.Error("cannot open the user store", "path", l.path, "err", err)
		return nil
	}
	l.log.Info("user store opened", "path", l.path)
	l.s.Store(s)
	return s
}

// Key implements turnauth.KeyLookup.
func (l *Lazy) Key(ctx context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	s := l.get()
	if s == nil {
		return nil, fmt.Errorf("%w: %q (no user store yet)", turnauth.ErrUnknownUser, username)
	}
	return s.Key(ctx, username, realm, alg)
}

// ByUserhash implements turnauth.UserhashLookup.
func (l *Lazy) ByUserhash(ctx context.Context, userhash [32]byte, realm string) (string, error) {
	s := l.get()
	if s == nil {
		return "", fmt.Errorf("%w: no user store yet", turnauth.ErrUnknownUser)
	}
	return s.ByUserhash(ctx, userhash, realm)
}

// Close closes the store if it was opened; later lookups find no user and
// no longer look for the file. It may be called more than once.
func (l *Lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if s := l.s.Swap(nil); s != nil {
		return s.Close()
	}
	return nil
}
