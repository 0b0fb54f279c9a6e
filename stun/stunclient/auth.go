package stunclient

import (
	"fmt"

	"github.com/icebreaker-net/icebreaker/stun"
)

// authState is the long-term credential state for one server: the realm
// and nonce of its latest challenge, the password algorithm chosen, and
// the key derived from them. RFC 8489, Section 9.2. A value is immutable
// once built; the Client replaces it rather than changing it, so
// concurrent transactions can share one.
type authState struct {
	realm    string
	nonce    string
	algs     []byte // PASSWORD-ALGORITHMS as the server sent it, to echo; nil if absent
	alg      stun.PasswordAlgorithm
	userhash bool // send USERHASH instead of USERNAME
	key      []byte
}

// integrity is the attribute a request carries, and so the one a response
// must carry: MESSAGE-INTEGRITY-SHA256 once the server has sent
// PASSWORD-ALGORITHMS, MESSAGE-INTEGRITY (with the MD5 key) otherwise.
// RFC 8489, Sections 9.2.4 and 9.2.5.
func (a *authState) integrity() stun.AttrType {
	if a.algs != nil {
		return stun.AttrMessageIntegritySHA256
	}
	return stun.AttrMessageIntegrity
}

// appendAuth appends the attributes of an authenticated request: USERNAME
// or USERHASH, REALM, NONCE, PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM
// when the server offered algorithms, and the integrity attribute, which
// must come after every attribute it protects. RFC 8489, Sections 9.2.3.2
// and 9.2.5.
func (a *authState) appendAuth(b []byte, username string) ([]byte, error) {
	if a.userhash {
		h, err := stun.Userhash(username, a.realm)
		if err != nil {
			return nil, err
		}
		b = stun.AppendAttr(b, stun.AttrUserhash, h[:])
	} else {
		b = stun.AppendAttrString(b, stun.AttrUsername, username)
	}
	b = stun.AppendAttrString(b, stun.AttrRealm, a.realm)
	b = stun.AppendAttrString(b, stun.AttrNonce, a.nonce)
	if a.algs != nil {
		b = stun.AppendAttr(b, stun.AttrPasswordAlgorithms, a.algs)
		b = stun.AppendPasswordAlgorithm(b, stun.PasswordAlgorithmParams{Algorithm: a.alg})
		return stun.AppendMessageIntegritySHA256(b, a.key), nil
	}
	return stun.AppendMessageIntegrity(b, a.key), nil
}

// challenge computes the credentials to retry with after a 401
// (Unauthenticated) or 438 (Stale Nonce) response m, given the credentials
// prev that the rejected request carried (nil if none). It returns an
// error, wrapping serr, when the client must not retry. RFC 8489,
// Section 9.2.5.
func challenge(m *stun.Message, serr *stun.Error, prev *authState, username, password string) (*authState, error) {
	if username == "" {
		return nil, fmt.Errorf("%w: %w", ErrNoCredentials, serr)
	}
	nonce, err := m.Nonce()
	if err != nil {
		return nil, fmt.Errorf("stun: %d response without a usable NONCE (%w): %w", serr.Code, err, serr)
	}
	realm, err := m.Realm()
	switch {
	case err == nil:
	case prev != nil && serr.Code == stun.CodeStaleNonce:
		realm = prev.realm // a 438 should repeat the realm; tolerate one that does not.
	default:
		return nil, fmt.Errorf("stun: %d response without a usable REALM (%w): %w", serr.Code, err, serr)
	}
	features, cookie := stun.NonceFeatures(nonce)
	algsRaw, hasAlgs := m.Get(stun.AttrPasswordAlgorithms)
	if cookie && features&stun.FeaturePasswordAlgorithms != 0 && !hasAlgs {
		return nil, fmt.Errorf("%w: %w", ErrBidDown, serr)
	}
	// A second 401 for the same realm means the credentials are wrong:
	// retrying with the same username and password is forbidden.
	if serr.Code == stun.CodeUnauthorized && prev != nil && prev.realm == realm {
		return nil, serr
	}
	next := &authState{
		realm:    realm,
		nonce:    nonce,
		alg:      stun.PasswordMD5,
		userhash: cookie && features&stun.FeatureUsernameAnonymity != 0,
	}
	if hasAlgs {
		algs, err := stun.ParsePasswordAlgorithms(nil, algsRaw)
		if err != nil {
			return nil, fmt.Errorf("stun: bad PASSWORD-ALGORITHMS (%w): %w", err, serr)
		}
		// The first algorithm of the server's list that the client
		// supports; none supported means no retry.
		found := false
		for _, a := range algs {
			if a.Algorithm == stun.PasswordMD5 || a.Algorithm == stun.PasswordSHA256 {
				next.alg, found = a.Algorithm, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("stun: server offers no supported password algorithm: %w", serr)
		}
		next.algs = append([]byte(nil), algsRaw...)
	}
	next.key, err = stun.LongTermKey(next.alg, username, realm, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, serr)
	}
	return next, nil
}
