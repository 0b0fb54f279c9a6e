package turnauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// DefaultNonceTTL is how long a nonce stays valid when Config.NonceTTL is
// zero: coturn's default too (stale-nonce=600).
const DefaultNonceTTL = 10 * time.Minute

// minNonceSecret is the shortest NonceSecret New accepts.
const minNonceSecret = 16

// Config configures an Authenticator. The zero value of each field but
// Realm means its documented default. New copies it.
type Config struct {
	// Realm is sent in REALM and is part of every key. Required.
	Realm string
	// Users looks up long-term keys. It may be nil when only REST
	// credentials are used. If it also implements UserhashLookup, USERHASH
	// is accepted.
	Users KeyLookup
	// RESTSecrets enables TURN REST API credentials. Every secret
	// verifies; the first is the one to sign new credentials with (for
	// tooling). Empty means REST credentials are not accepted.
	RESTSecrets []string
	// NonceSecret is the HMAC key of the stateless nonces, at least 16
	// bytes. Nil means a random key per Authenticator: nonces then die
	// with the process. Set it to share nonces across restarts and
	// between the nodes of a cluster.
	NonceSecret []byte
	// NonceTTL is how long a nonce is valid; after that a request gets
	// 438 and a fresh nonce. Zero means DefaultNonceTTL; at most
	// MaxNonceTTL. It is truncated to whole seconds.
	NonceTTL time.Duration
	// Algorithms are the password algorithms offered in
	// PASSWORD-ALGORITHMS, in order of preference. Nil means SHA-256 then
	// MD5. Keep MD5: clients that predate RFC 8489 (coturn's tools, pion,
	// browsers) use nothing else. A list without SHA-256 sends no
	// PASSWORD-ALGORITHMS at all, as an RFC 5389 server would.
	Algorithms []stun.PasswordAlgorithm
}

// Validate reports the first invalid field of c, by name.
func (c *Config) Validate() error {
	if c.Realm == "" {
		return errors.New("turnauth: Realm is empty")
	}
	if len(c.Realm) > stun.MaxRealm {
		return fmt.Errorf("turnauth: Realm is %d bytes, more than %d", len(c.Realm), stun.MaxRealm)
	}
	if _, err := stun.PreparePassword(c.Realm); err != nil {
		return fmt.Errorf("turnauth: Realm: %w", err)
	}
	if c.Users == nil && len(c.RESTSecrets) == 0 {
		return errors.New("turnauth: neither Users nor RESTSecrets: nobody could authenticate")
	}
	for i, s := range c.RESTSecrets {
		if s == "" {
			return fmt.Errorf("turnauth: RESTSecrets[%d] is empty", i)
		}
	}
	if c.NonceSecret != nil && len(c.NonceSecret) < minNonceSecret {
		return fmt.Errorf("turnauth: NonceSecret is %d bytes, need at least %d", len(c.NonceSecret), minNonceSecret)
	}
	if c.NonceTTL < 0 || c.NonceTTL > MaxNonceTTL {
		return fmt.Errorf("turnauth: NonceTTL %v is not between 0 and %v", c.NonceTTL, MaxNonceTTL)
	}
	if c.Algorithms != nil && len(c.Algorithms) == 0 {
		return errors.New("turnauth: Algorithms is empty")
	}
	for i, alg := range c.Algorithms {
		if alg != stun.PasswordMD5 && alg != stun.PasswordSHA256 {
			return fmt.Errorf("turnauth: Algorithms[%d]: unsupported %s", i, alg)
		}
		if slices.Index(c.Algorithms, alg) != i {
			return fmt.Errorf("turnauth: Algorithms[%d]: %s listed twice", i, alg)
		}
	}
	return nil
}

// Authenticator verifies requests with long-term or REST credentials. It
// is safe for concurrent use and holds no goroutines; its zero value is not
// usable: call New.
type Authenticator struct {
	realm       string
	users       KeyLookup
	userhash    UserhashLookup // users, if it resolves USERHASH
	secrets     []string
	nonceSecret []byte
	nonceTTL    time.Duration
	algs        []stun.PasswordAlgorithmParams // offered, in order
	md5         bool                           // MD5 is among algs
	features    uint32                         // nonce cookie feature bits
}

// New returns an Authenticator for cfg, after cfg.Validate.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{
		realm:       cfg.Realm,
		users:       cfg.Users,
		secrets:     slices.Clone(cfg.RESTSecrets),
		nonceSecret: slices.Clone(cfg.NonceSecret),
		nonceTTL:    cfg.NonceTTL,
	}
	if a.nonceSecret == nil {
		a.nonceSecret = make([]byte, 32)
		_, _ = rand.Read(a.nonceSecret) // crypto/rand.Read never fails on Linux.
	}
	if a.nonceTTL == 0 {
		a.nonceTTL = DefaultNonceTTL
	}
	algs := cfg.Algorithms
	if algs == nil {
		algs = []stun.PasswordAlgorithm{stun.PasswordSHA256, stun.PasswordMD5}
	}
	for _, alg := range algs {
		a.algs = append(a.algs, stun.PasswordAlgorithmParams{Algorithm: alg})
	}
	a.md5 = slices.Contains(algs, stun.PasswordMD5)
	if slices.Contains(algs, stun.PasswordSHA256) {
		a.features |= stun.FeaturePasswordAlgorithms
	}
	if uh, ok := cfg.Users.(UserhashLookup); ok {
		a.userhash = uh
		// The anonymity bit obliges RFC 8489 clients to send USERHASH
		// (Section 9.2.3.2), which cannot name a REST user: announce it
		// only without REST secrets.
		if len(a.secrets) == 0 {
			a.features |= stun.FeatureUsernameAnonymity
		}
	}
	return a, nil
}

// Realm returns the configured realm.
func (a *Authenticator) Realm() string { return a.realm }

// Result is the outcome of a successful Authenticate: who the user is and
// how to sign the response. Key is the user's long-term key; it belongs to
// the Result and must not be modified.
type Result struct {
	Username string
	Key      []byte
	// Algorithm is the password algorithm Key was derived with.
	Algorithm stun.PasswordAlgorithm
	// SHA256 is true when the request carried MESSAGE-INTEGRITY-SHA256:
	// the response must then carry it too.
	SHA256 bool
	// REST is true when the user authenticated with REST credentials.
	REST bool
	// Expires is when REST credentials expire; zero for other users.
	// Authenticate refuses expired REST credentials only on Allocate (see
	// Authenticate), so later requests of an allocation may carry them.
	Expires time.Time
	// NonceIssued is when the request's nonce was minted. A server may
	// refuse a nonce issued before an event that invalidates what it
	// authorised (turnserver does after an allocation is deleted).
	NonceIssued time.Time
}

// Transport is the transport protocol a request came over, part of the
// client transport address a nonce is bound to. The zero value is UDP.
type Transport uint8

// Transports.
const (
	UDP Transport = iota
	TCP
	TLS
)

// Client is where a request came from: the client's transport address
// (IP address and port, as the server sees them) and the transport
// protocol. A nonce is bound to all three.
type Client struct {
	Addr      netip.AddrPort
	Transport Transport
}

// Failure says why a request did not authenticate, for counting and
// logging; it is never sent.
type Failure uint8

// Failures, in the order of the checks.
const (
	// NoCredentials is a request without MESSAGE-INTEGRITY: the first
	// step of every exchange, not an attack.
	NoCredentials Failure = iota
	// BadRequest is a malformed or incomplete set of credential
	// attributes, or a violated PASSWORD-ALGORITHM rule (400).
	BadRequest
	// WrongRealm is a REALM other than the server's.
	WrongRealm
	// UnknownUser is a USERNAME or USERHASH nobody has.
	UnknownUser
	// BadIntegrity is a known user (or REST-shaped name) whose
	// MESSAGE-INTEGRITY does not verify: a wrong password or secret.
	BadIntegrity
	// StaleNonce is a nonce that expired, is not the server's, or was
	// issued to another client transport address (438).
	StaleNonce
	// ExpiredREST is an Allocate with REST credentials whose HMAC
	// verifies but whose expiry has passed.
	ExpiredREST
	// LookupError is a failed key lookup (500).
	LookupError
)

var failureNames = [...]string{"no_credentials", "bad_request", "wrong_realm", "unknown_user",
	"bad_integrity", "stale_nonce", "expired_rest", "lookup_error"}

// String returns the failure's name in snake case, as metrics label it.
func (f Failure) String() string {
	if int(f) < len(failureNames) {
		return failureNames[f]
	}
	return "unknown"
}

// AppendSignature appends MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256
// (as the request had) and FINGERPRINT to a response being built in b, the
// last attributes of the message. RFC 8489, Section 9.2.4, last paragraph.
func (r Result) AppendSignature(b []byte) []byte {
	if r.SHA256 {
		b = stun.AppendMessageIntegritySHA256(b, r.Key)
	} else {
		b = stun.AppendMessageIntegrity(b, r.Key)
	}
	return stun.AppendFingerprint(b)
}

// Challenge is the error response to send when a request does not pass:
// Code is 400, 401, 438, or 500 (the key lookup failed). AppendChallenge
// writes its attributes. Detail says why, for logs; it is never sent.
type Challenge struct {
	Code   int
	Reason string
	Detail string
	// Why classifies the failure for metrics and logs.
	Why Failure
}

func challenge(code int, why Failure, detail string) *Challenge {
	return &Challenge{Code: code, Reason: stun.ReasonPhrase(code), Detail: detail, Why: why}
}

// StaleNonceChallenge is the 438 a server sends when it refuses a nonce
// for a reason of its own (Result.NonceIssued): the client retries with the
// fresh nonce the challenge carries.
func StaleNonceChallenge(detail string) *Challenge {
	return challenge(stun.CodeStaleNonce, StaleNonce, detail)
}

// AppendChallenge appends the attributes of the error response for c to a
// message whose header b already holds: ERROR-CODE, and for 401 and 438 also
// REALM, a fresh NONCE for the client at from, valid from now on, and
// PASSWORD-ALGORITHMS when SHA-256 is offered. The caller appends
// FINGERPRINT (and SOFTWARE, if it wants) afterwards. The response to a 400
// carries neither REALM nor NONCE (RFC 8489, Section 9.2.4).
//
// The first challenge of an exchange (NoCredentials) has an empty reason
// phrase, which RFC 8489, Section 14.8 allows: the response to an
// unauthenticated request is what a spoofed request reflects, so it stays
// short.
func (a *Authenticator) AppendChallenge(b []byte, c *Challenge, from Client, now time.Time) []byte {
	if c.Why == NoCredentials && c.Code == stun.CodeUnauthorized {
		b = stun.AppendAttr(b, stun.AttrErrorCode, []byte{0, 0, byte(c.Code / 100), byte(c.Code % 100)})
	} else {
		b = stun.AppendErrorCode(b, c.Code, c.Reason)
	}
	if c.Code != stun.CodeUnauthorized && c.Code != stun.CodeStaleNonce {
		return b
	}
	b = stun.AppendAttrString(b, stun.AttrRealm, a.realm)
	var buf [64]byte // cookie (13) + base64url of 24 bytes (32)
	b = stun.AppendAttr(b, stun.AttrNonce, a.appendNonce(buf[:0], from, now))
	if a.features&stun.FeaturePasswordAlgorithms != 0 {
		b = stun.AppendPasswordAlgorithms(b, a.algs)
	}
	return b
}

// Authenticate runs the checks of RFC 8489, Section 9.2.4 on request m,
// received from from at time now. It returns the Result on success, or a
// Challenge for the error response. It never panics on malformed input; a
// malformed credential attribute gives 400.
//
// Deviations and choices, where the RFC is silent:
//   - a REALM other than the configured one gets 401 with the right REALM
//     (the key would not match anyway);
//   - a nonce is bound to the client's transport address: IP address, port
//     and transport protocol (as coturn binds it). From any other (another
//     port of the same host, a new TCP connection) it is stale (438), so a
//     request captured on one 5-tuple cannot be replayed from another;
//   - a nonce that is not the server's at all is also answered with 438,
//     which hands the client a valid one;
//   - a REST username (EXPIRY:user) is checked against the REST secrets
//     first and then, if that fails, against Users. The HMAC is checked
//     before the expiry, so only a holder of a valid credential learns that
//     it expired; a stranger gets the 401 of an unknown user;
//   - REST credentials are refused once expired only on Allocate: an
//     allocation made while they were valid lives by its own lifetime and
//     refreshes, as with coturn and browsers, so a call outlives its
//     credential;
//   - USERHASH is resolved only for Users, never for REST credentials.
func (a *Authenticator) Authenticate(ctx context.Context, m *stun.Message, from Client, now time.Time) (Result, *Challenge) {
	// Step 1: no integrity at all: challenge.
	hasMI, hasMI256 := m.Has(stun.AttrMessageIntegrity), m.Has(stun.AttrMessageIntegritySHA256)
	if !hasMI && !hasMI256 {
		return Result{}, challenge(stun.CodeUnauthorized, NoCredentials, "no MESSAGE-INTEGRITY")
	}

	// Step 2: integrity but missing credentials: 400.
	rawUser, hasUser := m.Get(stun.AttrUsername)
	rawHash, hasHash := m.Get(stun.AttrUserhash)
	rawRealm, hasRealm := m.Get(stun.AttrRealm)
	rawNonce, hasNonce := m.Get(stun.AttrNonce)
	if !hasUser && !hasHash || !hasRealm || !hasNonce {
		return Result{}, challenge(stun.CodeBadRequest, BadRequest, "MESSAGE-INTEGRITY without USERNAME/USERHASH, REALM or NONCE")
	}
	if _, err := stun.ParseText(stun.AttrRealm, rawRealm); err != nil {
		return Result{}, challenge(stun.CodeBadRequest, BadRequest, err.Error())
	}
	if _, err := stun.ParseText(stun.AttrNonce, rawNonce); err != nil {
		return Result{}, challenge(stun.CodeBadRequest, BadRequest, err.Error())
	}
	nonce := string(rawNonce)

	// Step 3: the bid-down check of a nonce with the "Password
	// algorithms" bit.
	alg, c := a.passwordAlgorithm(m, nonce)
	if c != nil {
		return Result{}, c
	}

	// Step 4: who is it?
	if string(rawRealm) != a.realm {
		return Result{}, challenge(stun.CodeUnauthorized, WrongRealm, "wrong REALM")
	}
	var username string
	switch {
	case hasUser:
		if _, err := stun.ParseText(stun.AttrUsername, rawUser); err != nil {
			return Result{}, challenge(stun.CodeBadRequest, BadRequest, err.Error())
		}
		username = string(rawUser)
	case a.userhash == nil:
		return Result{}, challenge(stun.CodeUnauthorized, UnknownUser, "USERHASH not supported")
	default:
		if len(rawHash) != 32 {
			return Result{}, challenge(stun.CodeBadRequest, BadRequest, fmt.Sprintf("USERHASH of %d bytes", len(rawHash)))
		}
		name, err := a.userhash.ByUserhash(ctx, [32]byte(rawHash), a.realm)
		if err != nil {
			return Result{}, lookupChallenge(err)
		}
		username = name
	}

	// Step 5: the key and the integrity check.
	res, c := a.verify(ctx, m, username, alg, hasUser, hasMI256)
	if c != nil {
		return Result{}, c
	}

	// Step 6: a valid but stale (or foreign) nonce: 438 with a new one.
	state, issued := a.checkNonce(nonce, from, now)
	switch state {
	case nonceExpired:
		return Result{}, challenge(stun.CodeStaleNonce, StaleNonce, "nonce expired")
	case nonceForged:
		return Result{}, challenge(stun.CodeStaleNonce, StaleNonce, "nonce not issued to this client transport address")
	}
	res.NonceIssued = issued

	// REST credentials create allocations only while they are valid.
	if res.REST && m.Type.Method == stun.MethodAllocate && !now.Before(res.Expires) {
		return Result{}, &Challenge{Code: stun.CodeUnauthorized, Reason: "Credentials Expired", Detail: "REST credentials expired", Why: ExpiredREST}
	}
	return res, nil
}

// passwordAlgorithm applies the PASSWORD-ALGORITHM(S) rules of RFC 8489,
// Section 9.2.4 and returns the algorithm the key is derived with.
func (a *Authenticator) passwordAlgorithm(m *stun.Message, nonce string) (stun.PasswordAlgorithm, *Challenge) {
	features, _ := stun.NonceFeatures(nonce)
	if features&stun.FeaturePasswordAlgorithms == 0 {
		// An RFC 5389 exchange: MD5, whatever else the request says.
		if !a.md5 {
			// Not a nonce this server issues now: hand out one.
			return 0, challenge(stun.CodeStaleNonce, StaleNonce, "nonce without password algorithms, MD5 disabled")
		}
		return stun.PasswordMD5, nil
	}
	rawAlg, hasAlg := m.Get(stun.AttrPasswordAlgorithm)
	rawAlgs, hasAlgs := m.Get(stun.AttrPasswordAlgorithms)
	if !hasAlg && !hasAlgs {
		// "processed as though PASSWORD-ALGORITHM were MD5": how every
		// client that predates RFC 8489 gets in.
		if !a.md5 {
			return 0, challenge(stun.CodeBadRequest, BadRequest, "MD5 password algorithm disabled")
		}
		return stun.PasswordMD5, nil
	}
	if !hasAlg || !hasAlgs {
		return 0, challenge(stun.CodeBadRequest, BadRequest, "PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS must come together")
	}
	var inl [4]stun.PasswordAlgorithmParams
	offered, err := stun.ParsePasswordAlgorithms(inl[:0], rawAlgs)
	if err != nil || !a.sameAlgorithms(offered) {
		return 0, challenge(stun.CodeBadRequest, BadRequest, "PASSWORD-ALGORITHMS differs from the offer")
	}
	chosen, err := stun.ParsePasswordAlgorithm(rawAlg)
	if err != nil || len(chosen.Params) != 0 || !a.offers(chosen.Algorithm) {
		return 0, challenge(stun.CodeBadRequest, BadRequest, "PASSWORD-ALGORITHM not offered")
	}
	return chosen.Algorithm, nil
}

func (a *Authenticator) sameAlgorithms(got []stun.PasswordAlgorithmParams) bool {
	if len(got) != len(a.algs) {
		return false
	}
	for i := range got {
		if got[i].Algorithm != a.algs[i].Algorithm || len(got[i].Params) != 0 {
			return false
		}
	}
	return true
}

func (a *Authenticator) offers(alg stun.PasswordAlgorithm) bool {
	for _, p := range a.algs {
		if p.Algorithm == alg {
			return true
		}
	}
	return false
}

// verify finds the key of username and checks the request's integrity
// with it: REST secrets first (when the username has the REST shape), then
// Users. The expiry of REST credentials is not checked here: it is
// reported in Result.Expires, after the HMAC has verified.
func (a *Authenticator) verify(ctx context.Context, m *stun.Message, username string, alg stun.PasswordAlgorithm, restOK, sha256 bool) (Result, *Challenge) {
	check := m.CheckIntegrity
	if sha256 {
		check = m.CheckIntegritySHA256
	}
	res := Result{Username: username, Algorithm: alg, SHA256: sha256}
	var restFail *Challenge
	if restOK && len(a.secrets) > 0 {
		if expiry, _, ok := turn.ParseRESTUsername(username); ok {
			for _, s := range a.secrets {
				key, err := stun.LongTermKey(alg, username, a.realm, turn.RESTPassword(s, username))
				if err == nil && check(key) == nil {
					res.Key, res.REST, res.Expires = key, true, expiry
					return res, nil
				}
			}
			restFail = challenge(stun.CodeUnauthorized, BadIntegrity, "REST credentials do not match any secret")
		}
	}
	if a.users == nil {
		if restFail == nil {
			restFail = challenge(stun.CodeUnauthorized, UnknownUser, "unknown user (REST credentials only)")
		}
		return Result{}, restFail
	}
	key, err := a.users.Key(ctx, username, a.realm, alg)
	if err != nil {
		if restFail != nil && errors.Is(err, ErrUnknownUser) {
			return Result{}, restFail
		}
		return Result{}, lookupChallenge(err)
	}
	if check(key) != nil {
		return Result{}, challenge(stun.CodeUnauthorized, BadIntegrity, "integrity check failed")
	}
	res.Key = key
	return res, nil
}

func lookupChallenge(err error) *Challenge {
	if errors.Is(err, ErrUnknownUser) {
		return challenge(stun.CodeUnauthorized, UnknownUser, "unknown user")
	}
	return challenge(stun.CodeServerError, LookupError, "key lookup: "+err.Error())
}
