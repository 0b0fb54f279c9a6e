package userstore

import (
	"context"
	"fmt"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Admin is what `icebreaker user` does to a user store; *Store (SQLite)
// and *PG (PostgreSQL) implement it.
type Admin interface {
	// Add adds a user; the error wraps ErrUserExists if it is there.
	Add(ctx context.Context, realm, username, password string) error
	// SetPassword replaces a user's keys; the error wraps ErrNoUser if
	// there is no such user.
	SetPassword(ctx context.Context, realm, username, password string) error
	// Delete removes a user; the error wraps ErrNoUser if there is no
	// such user.
	Delete(ctx context.Context, realm, username string) error
	// List returns the users of realm ("" = every realm), sorted.
	List(ctx context.Context, realm string) ([]User, error)
	// ImportMD5 adds or replaces a user with only its RFC 8489 MD5
	// long-term key (MD5(username:realm:password)), as coturn keeps it.
	// Such a user authenticates with MD5 only (the SHA-256 key needs the
	// password) until SetPassword gives it both keys.
	ImportMD5(ctx context.Context, realm, username string, keyMD5 []byte) error
	// Path names the store: a file path, or a URL without its password.
	Path() string
	Close() error
}

var (
	_ Admin = (*Store)(nil)
	_ Admin = (*PG)(nil)
)

// importChecks validates an imported user and returns its USERHASH.
func importChecks(realm, username string, keyMD5 []byte) ([32]byte, error) {
	if err := CheckUsername(username); err != nil {
		return [32]byte{}, err
	}
	if realm == "" {
		return [32]byte{}, fmt.Errorf("userstore: %q: empty realm", username)
	}
	if len(keyMD5) != 16 {
		return [32]byte{}, fmt.Errorf("userstore: %q: MD5 key of %d bytes, want 16", username, len(keyMD5))
	}
	uh, err := stun.Userhash(username, realm)
	if err != nil {
		return [32]byte{}, fmt.Errorf("userstore: %w", err)
	}
	return uh, nil
}
