package turnauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Chain looks a user up in each KeyLookup in turn: the first that knows
// the user answers, and an error other than ErrUnknownUser ends the search.
// It implements KeyLookup, and UserhashLookup through those of its lookups
// that implement it; a nil or empty Chain knows nobody. For example, the
// users of a configuration file before those of a database:
//
//	users := turnauth.Chain{turnauth.StaticUsers{"alice": "secret"}, store}
//
// It is safe for concurrent use if its lookups are.
type Chain []KeyLookup

// Key implements KeyLookup.
func (c Chain) Key(ctx context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	for _, l := range c {
		k, err := l.Key(ctx, username, realm, alg)
		if err == nil || !errors.Is(err, ErrUnknownUser) {
			return k, err
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownUser, username)
}

// ByUserhash implements UserhashLookup, asking the lookups that implement
// it in turn.
func (c Chain) ByUserhash(ctx context.Context, userhash [32]byte, realm string) (string, error) {
	for _, l := range c {
		uh, ok := l.(UserhashLookup)
		if !ok {
			continue
		}
		name, err := uh.ByUserhash(ctx, userhash, realm)
		if err == nil || !errors.Is(err, ErrUnknownUser) {
			return name, err
		}
	}
	return "", fmt.Errorf("%w: no user with that USERHASH", ErrUnknownUser)
}
