package turnauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"

	"github.com/icebreaker-net/icebreaker/stun"
)

// ErrUnknownUser is what a KeyLookup returns (possibly wrapped) for a user
// it does not know. Authenticate answers such a request with 401; any other
// lookup error gives 500.
var ErrUnknownUser = errors.New("turnauth: unknown user")

// KeyLookup finds the long-term key of a user: H(username ":" realm ":"
// password) with H the password algorithm alg, as stun.LongTermKey computes
// it. It returns an error wrapping ErrUnknownUser for a user it does not
// know. Implementations must be safe for concurrent use; the returned key
// belongs to the caller.
type KeyLookup interface {
	Key(ctx context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error)
}

// UserhashLookup is implemented by a KeyLookup that can also resolve the
// USERHASH attribute, SHA-256(username ":" realm) (RFC 8489, Section 14.4),
// to a username. An Authenticator whose Users implement it accepts requests
// that carry USERHASH instead of USERNAME and sets the "Username anonymity"
// bit in its nonces.
type UserhashLookup interface {
	ByUserhash(ctx context.Context, userhash [32]byte, realm string) (username string, err error)
}

// StaticUsers maps usernames to plain passwords, as a configuration file
// lists them. It implements KeyLookup and UserhashLookup. It is safe for
// concurrent use as long as nobody modifies the map.
type StaticUsers map[string]string

// Key implements KeyLookup.
func (u StaticUsers) Key(_ context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	p, ok := u[username]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, username)
	}
	return stun.LongTermKey(alg, username, realm, p)
}

// ByUserhash implements UserhashLookup by hashing every username: fine for
// the handful of users a configuration file holds.
func (u StaticUsers) ByUserhash(_ context.Context, userhash [32]byte, realm string) (string, error) {
	names := make([]string, 0, len(u))
	for name := range u {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic, should two names ever collide
	for _, name := range names {
		h, err := stun.Userhash(name, realm)
		if err != nil {
			return "", err
		}
		if subtle.ConstantTimeCompare(h[:], userhash[:]) == 1 {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: no user with that USERHASH", ErrUnknownUser)
}
