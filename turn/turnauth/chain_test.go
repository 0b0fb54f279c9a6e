package turnauth

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
)

// keyOnly is a KeyLookup without USERHASH support.
type keyOnly struct{ users StaticUsers }

func (k keyOnly) Key(ctx context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	return k.users.Key(ctx, username, realm, alg)
}

// failing fails every lookup with err.
type failing struct{ err error }

func (f failing) Key(context.Context, string, string, stun.PasswordAlgorithm) ([]byte, error) {
	return nil, f.err
}

func (f failing) ByUserhash(context.Context, [32]byte, string) (string, error) { return "", f.err }

func TestChain(t *testing.T) {
	ctx := context.Background()
	const realm = "example.org"
	broken := errors.New("database is down")
	chain := Chain{
		StaticUsers{"alice": "first"},
		keyOnly{StaticUsers{"bob": "hidden"}},
		StaticUsers{"alice": "second", "carol": "c"},
	}
	key := func(user, pass string) []byte {
		k, err := stun.LongTermKey(stun.PasswordSHA256, user, realm, pass)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tc := range []struct {
		user string
		want []byte
	}{
		{"alice", key("alice", "first")}, // the first lookup that knows her wins
		{"bob", key("bob", "hidden")},
		{"carol", key("carol", "c")},
	} {
		got, err := chain.Key(ctx, tc.user, realm, stun.PasswordSHA256)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("Key(%s) = %x, %v; want %x", tc.user, got, err, tc.want)
		}
	}
	if _, err := chain.Key(ctx, "dave", realm, stun.PasswordSHA256); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Key(dave): %v, want ErrUnknownUser", err)
	}

	hash := func(user string) [32]byte {
		h, err := stun.Userhash(user, realm)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if name, err := chain.ByUserhash(ctx, hash("carol"), realm); err != nil || name != "carol" {
		t.Errorf("ByUserhash(carol) = %q, %v", name, err)
	}
	// bob's lookup cannot resolve a USERHASH: it is skipped.
	if _, err := chain.ByUserhash(ctx, hash("bob"), realm); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("ByUserhash(bob): %v, want ErrUnknownUser", err)
	}

	// Another error ends the search: it must not turn into a 401.
	stop := Chain{failing{broken}, StaticUsers{"alice": "x"}}
	if _, err := stop.Key(ctx, "alice", realm, stun.PasswordMD5); !errors.Is(err, broken) {
		t.Errorf("Key past a failing lookup: %v, want %v", err, broken)
	}
	if _, err := stop.ByUserhash(ctx, hash("alice"), realm); !errors.Is(err, broken) {
		t.Errorf("ByUserhash past a failing lookup: %v, want %v", err, broken)
	}
	var empty Chain
	if _, err := empty.Key(ctx, "alice", realm, stun.PasswordMD5); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("empty Chain: %v", err)
	}
}
