package turnauth

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

const testRealm = "example.org"

var (
	t0        = time.Unix(1_700_000_000, 0)
	client    = netip.MustParseAddrPort("192.0.2.10:40000")
	allocType = stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}
	errType   = stun.Type{Method: stun.MethodAllocate, Class: stun.ClassError}
	okType    = stun.Type{Method: stun.MethodAllocate, Class: stun.ClassSuccess}
)

func newAuth(tb testing.TB, cfg Config) *Authenticator {
	tb.Helper()
	if cfg.Realm == "" {
		cfg.Realm = testRealm
	}
	if cfg.Users == nil && cfg.RESTSecrets == nil {
		cfg.Users = StaticUsers{"alice": "wonderland", "bob": "builder"}
	}
	a, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return a
}

// request describes a request a client builds.
type request struct {
	username string // USERNAME, unless userhash
	userhash bool   // send USERHASH of username instead
	realm    string
	nonce    string
	password string
	keyAlg   stun.PasswordAlgorithm // key derivation; 0 means MD5
	alg      stun.PasswordAlgorithm // PASSWORD-ALGORITHM to send; 0 means none
	algs     []stun.PasswordAlgorithm
	sha256   bool // MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY
	noMI     bool
	omit     stun.AttrType // an attribute to leave out
	method   stun.Method   // 0 means Allocate
}

func (r request) build(tb testing.TB) *stun.Message {
	tb.Helper()
	id := stun.NewTransactionID()
	typ := allocType
	if r.method != 0 {
		typ.Method = r.method
	}
	b := stun.AppendHeader(nil, typ, id)
	b = stun.AppendAttr(b, stun.AttrRequestedTransport, []byte{17, 0, 0, 0})
	if r.omit != stun.AttrUsername {
		if r.userhash {
			h, err := stun.Userhash(r.username, r.realm)
			if err != nil {
				tb.Fatal(err)
			}
			b = stun.AppendAttr(b, stun.AttrUserhash, h[:])
		} else {
			b = stun.AppendAttrString(b, stun.AttrUsername, r.username)
		}
	}
	if r.omit != stun.AttrRealm {
		b = stun.AppendAttrString(b, stun.AttrRealm, r.realm)
	}
	if r.omit != stun.AttrNonce {
		b = stun.AppendAttrString(b, stun.AttrNonce, r.nonce)
	}
	if r.algs != nil {
		var ps []stun.PasswordAlgorithmParams
		for _, a := range r.algs {
			ps = append(ps, stun.PasswordAlgorithmParams{Algorithm: a})
		}
		b = stun.AppendPasswordAlgorithms(b, ps)
	}
	if r.alg != 0 {
		b = stun.AppendPasswordAlgorithm(b, stun.PasswordAlgorithmParams{Algorithm: r.alg})
	}
	if !r.noMI {
		keyAlg := r.keyAlg
		if keyAlg == 0 {
			keyAlg = stun.PasswordMD5
		}
		key, err := stun.LongTermKey(keyAlg, r.username, r.realm, r.password)
		if err != nil {
			tb.Fatal(err)
		}
		if r.sha256 {
			b = stun.AppendMessageIntegritySHA256(b, key)
		} else {
			b = stun.AppendMessageIntegrity(b, key)
		}
	}
	b = stun.AppendFingerprint(b)
	var m stun.Message
	if err := m.Parse(b); err != nil {
		tb.Fatalf("parse built request: %v", err)
	}
	return &m
}

// offer is what a client learns from a 401 or 438.
type offer struct {
	code  int
	realm string
	nonce string
	algs  []stun.PasswordAlgorithm
	m     stun.Message
}

// challengeOf builds the error response for c and parses it back as a
// client would.
func challengeOf(tb testing.TB, a *Authenticator, c *Challenge, from netip.AddrPort, now time.Time) offer {
	tb.Helper()
	b := stun.AppendHeader(nil, errType, stun.NewTransactionID())
	b = a.AppendChallenge(b, c, Client{Addr: from}, now)
	b = stun.AppendFingerprint(b)
	var o offer
	if err := o.m.Parse(b); err != nil {
		tb.Fatalf("parse challenge: %v", err)
	}
	code, _, err := o.m.ErrorCode()
	if err != nil {
		tb.Fatalf("challenge ERROR-CODE: %v", err)
	}
	o.code = code
	o.realm, _ = o.m.Realm()
	o.nonce, _ = o.m.Nonce()
	if v, ok := o.m.Get(stun.AttrPasswordAlgorithms); ok {
		ps, err := stun.ParsePasswordAlgorithms(nil, v)
		if err != nil {
			tb.Fatalf("PASSWORD-ALGORITHMS: %v", err)
		}
		for _, p := range ps {
			o.algs = append(o.algs, p.Algorithm)
		}
	}
	return o
}

// challenge401 sends an unauthenticated request and returns the offer.
func challenge401(tb testing.TB, a *Authenticator, from netip.AddrPort, now time.Time) offer {
	tb.Helper()
	m := request{noMI: true, omit: stun.AttrUsername}.build(tb)
	_, c := a.Authenticate(context.Background(), m, Client{Addr: from}, now)
	if c == nil || c.Code != stun.CodeUnauthorized {
		tb.Fatalf("unauthenticated request: got %+v, want 401", c)
	}
	o := challengeOf(tb, a, c, from, now)
	if o.code != 401 || o.realm != a.Realm() || o.nonce == "" {
		tb.Fatalf("challenge: code %d realm %q nonce %q", o.code, o.realm, o.nonce)
	}
	return o
}

func mustPass(tb testing.TB, a *Authenticator, m *stun.Message, from netip.AddrPort, now time.Time) Result {
	tb.Helper()
	res, c := a.Authenticate(context.Background(), m, Client{Addr: from}, now)
	if c != nil {
		tb.Fatalf("Authenticate: %d %s (%s)", c.Code, c.Reason, c.Detail)
	}
	// The signed response verifies under the key the client derives.
	b := stun.AppendHeader(nil, okType, m.TransactionID)
	b = res.AppendSignature(b)
	var resp stun.Message
	if err := resp.Parse(b); err != nil {
		tb.Fatal(err)
	}
	if err := resp.CheckFingerprint(); err != nil {
		tb.Fatalf("response FINGERPRINT: %v", err)
	}
	check := resp.CheckIntegrity
	if res.SHA256 {
		check = resp.CheckIntegritySHA256
	}
	if err := check(res.Key); err != nil {
		tb.Fatalf("response integrity: %v", err)
	}
	if res.SHA256 != m.Has(stun.AttrMessageIntegritySHA256) {
		tb.Fatalf("Result.SHA256 = %v for a request with MI-SHA256 %v", res.SHA256, !res.SHA256)
	}
	return res
}

func mustFail(tb testing.TB, a *Authenticator, m *stun.Message, from netip.AddrPort, now time.Time, code int) *Challenge {
	tb.Helper()
	_, c := a.Authenticate(context.Background(), m, Client{Addr: from}, now)
	if c == nil {
		tb.Fatalf("Authenticate passed, want %d", code)
	}
	if c.Code != code {
		tb.Fatalf("Authenticate: %d (%s), want %d", c.Code, c.Detail, code)
	}
	return c
}

func TestChallengeContents(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	f, ok := stun.NonceFeatures(o.nonce)
	if !ok {
		t.Fatalf("nonce %q has no cookie", o.nonce)
	}
	if want := stun.FeaturePasswordAlgorithms | stun.FeatureUsernameAnonymity; f != want {
		t.Errorf("features = %#x, want %#x", f, want)
	}
	if len(o.algs) != 2 || o.algs[0] != stun.PasswordSHA256 || o.algs[1] != stun.PasswordMD5 {
		t.Errorf("PASSWORD-ALGORITHMS = %v, want [SHA-256 MD5]", o.algs)
	}
	if len(o.nonce) > stun.MaxNonce {
		t.Errorf("nonce of %d bytes", len(o.nonce))
	}
	// A second challenge to the same client in the same second differs
	// (RFC 8489, Section 9.2.4: no nonce reuse across clients).
	if o2 := challenge401(t, a, client, t0); o2.nonce == o.nonce {
		t.Errorf("two challenges gave the same nonce %q", o.nonce)
	}

	// MD5 only: an RFC 5389 server's challenge, no cookie.
	md5 := newAuth(t, Config{Algorithms: []stun.PasswordAlgorithm{stun.PasswordMD5}, Users: stubUsers{}})
	o = challenge401(t, md5, client, t0)
	if strings.HasPrefix(o.nonce, stun.NonceCookie) || o.algs != nil {
		t.Errorf("MD5-only challenge: nonce %q algorithms %v", o.nonce, o.algs)
	}

	// 400 carries neither REALM nor NONCE.
	o = challengeOf(t, a, &Challenge{Code: 400, Reason: "Bad Request"}, client, t0)
	if o.code != 400 || o.m.Has(stun.AttrRealm) || o.m.Has(stun.AttrNonce) || o.m.Has(stun.AttrPasswordAlgorithms) {
		t.Errorf("400: %+v", o)
	}
	// 438 carries all three.
	o = challengeOf(t, a, &Challenge{Code: 438, Reason: "Stale Nonce"}, client, t0)
	if o.code != 438 || o.realm != testRealm || o.nonce == "" || o.algs == nil {
		t.Errorf("438: %+v", o)
	}
}

// TestRFC5389Client is how coturn's turnutils_uclient, pion and browsers
// talk: they echo the nonce (cookie and all), send no PASSWORD-ALGORITHM(S)
// and sign with an MD5 key and MESSAGE-INTEGRITY.
func TestRFC5389Client(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	m := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}.build(t)
	res := mustPass(t, a, m, client, t0.Add(time.Second))
	if res.Username != "alice" || res.Algorithm != stun.PasswordMD5 || res.SHA256 || res.REST || len(res.Key) != 16 {
		t.Errorf("Result = %+v", res)
	}
	mustPass(t, a, m, client, t0.Add(DefaultNonceTTL-time.Second))
	if !res.NonceIssued.Equal(t0) {
		t.Errorf("NonceIssued = %v, want %v", res.NonceIssued, t0)
	}
}

// TestNonceBoundToTransportAddress replays a signed request from another
// port of the same host and over another transport: the nonce was issued
// to one client transport address, so both get 438 (coturn does the same).
func TestNonceBoundToTransportAddress(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	m := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}.build(t)
	mustPass(t, a, m, client, t0)
	for _, from := range []Client{
		{Addr: netip.AddrPortFrom(client.Addr(), client.Port()+1)},
		{Addr: client, Transport: TCP},
		{Addr: client, Transport: TLS},
		{Addr: netip.AddrPortFrom(netip.MustParseAddr("::ffff:192.0.2.10"), client.Port()), Transport: TCP},
	} {
		_, c := a.Authenticate(context.Background(), m, from, t0)
		if c == nil || c.Code != stun.CodeStaleNonce || c.Why != StaleNonce {
			t.Errorf("replay from %+v: %+v, want 438", from, c)
		}
	}
	// The IPv4-mapped form of the same address and port is the same client.
	mapped := Client{Addr: netip.AddrPortFrom(netip.MustParseAddr("::ffff:192.0.2.10"), client.Port())}
	if _, c := a.Authenticate(context.Background(), m, mapped, t0); c != nil {
		t.Errorf("IPv4-mapped client: %+v", c)
	}
}

// TestFirstChallengeIsShort: the 401 to an unauthenticated request, what a
// spoofed request reflects, has no reason phrase.
func TestFirstChallengeIsShort(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	code, reason, err := o.m.ErrorCode()
	if err != nil || code != 401 || len(reason) != 0 {
		t.Errorf("ERROR-CODE %d %q %v, want 401 without a reason", code, reason, err)
	}
	// With credentials, the reason phrase is there.
	m := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wrong"}.build(t)
	c := mustFail(t, a, m, client, t0, 401)
	if o := challengeOf(t, a, c, client, t0); o.m.Has(stun.AttrErrorCode) {
		if _, reason, _ := o.m.ErrorCode(); string(reason) != "Unauthorized" {
			t.Errorf("reason %q", reason)
		}
	}
}

func TestRFC8489Client(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	tests := []struct {
		name   string
		alg    stun.PasswordAlgorithm
		sha256 bool
	}{
		{"SHA-256 key, MESSAGE-INTEGRITY-SHA256", stun.PasswordSHA256, true},
		{"SHA-256 key, MESSAGE-INTEGRITY", stun.PasswordSHA256, false},
		{"MD5 key, MESSAGE-INTEGRITY-SHA256", stun.PasswordMD5, true},
		{"MD5 key, MESSAGE-INTEGRITY", stun.PasswordMD5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := request{username: "bob", realm: o.realm, nonce: o.nonce, password: "builder",
				keyAlg: tt.alg, alg: tt.alg, algs: o.algs, sha256: tt.sha256}.build(t)
			res := mustPass(t, a, m, client, t0)
			if res.Algorithm != tt.alg || res.SHA256 != tt.sha256 {
				t.Errorf("Result = %+v", res)
			}
		})
	}
	// MESSAGE-INTEGRITY-SHA256 without PASSWORD-ALGORITHM(S): MD5 key.
	m := request{username: "bob", realm: o.realm, nonce: o.nonce, password: "builder", sha256: true}.build(t)
	if res := mustPass(t, a, m, client, t0); res.Algorithm != stun.PasswordMD5 {
		t.Errorf("Algorithm = %v, want MD5", res.Algorithm)
	}
}

func TestFailures(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	sha := []stun.PasswordAlgorithm{stun.PasswordSHA256, stun.PasswordMD5}
	good := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}
	with := func(f func(*request)) request { r := good; f(&r); return r }
	tests := []struct {
		name string
		req  request
		from netip.AddrPort
		now  time.Time
		code int
	}{
		{"wrong password", with(func(r *request) { r.password = "looking-glass" }), client, t0, 401},
		{"unknown user", with(func(r *request) { r.username = "mallory" }), client, t0, 401},
		{"wrong realm", with(func(r *request) { r.realm = "other.example" }), client, t0, 401},
		{"no USERNAME", with(func(r *request) { r.omit = stun.AttrUsername }), client, t0, 400},
		{"no REALM", with(func(r *request) { r.omit = stun.AttrRealm }), client, t0, 400},
		{"no NONCE", with(func(r *request) { r.omit = stun.AttrNonce }), client, t0, 400},
		{"forged nonce", with(func(r *request) { r.nonce = "obMatJos2AAABdGhpcyBpcyBub3QgYSBub25jZQ" }), client, t0, 438},
		{"forged nonce without cookie", with(func(r *request) { r.nonce = "1234567890" }), client, t0, 438},
		{"nonce with a flipped bit", with(func(r *request) { r.nonce = flip(o.nonce) }), client, t0, 438},
		{"nonce features changed", with(func(r *request) { r.nonce = stun.NonceCookie + "AAAB" + o.nonce[13:] }), client, t0, 438},
		{"nonce from another IP", good, netip.MustParseAddrPort("198.51.100.7:40000"), t0, 438},
		{"expired nonce", good, client, t0.Add(DefaultNonceTTL), 438},
		{"expired nonce, wrong password", with(func(r *request) { r.password = "x" }), client, t0.Add(time.Hour), 401},
		{"PASSWORD-ALGORITHM alone", with(func(r *request) { r.alg = stun.PasswordSHA256; r.keyAlg = stun.PasswordSHA256 }), client, t0, 400},
		{"PASSWORD-ALGORITHMS alone", with(func(r *request) { r.algs = sha }), client, t0, 400},
		{"PASSWORD-ALGORITHMS reordered (bid-down)", with(func(r *request) {
			r.algs = []stun.PasswordAlgorithm{stun.PasswordMD5, stun.PasswordSHA256}
			r.alg = stun.PasswordMD5
		}), client, t0, 400},
		{"PASSWORD-ALGORITHMS shortened (bid-down)", with(func(r *request) {
			r.algs = []stun.PasswordAlgorithm{stun.PasswordMD5}
			r.alg = stun.PasswordMD5
		}), client, t0, 400},
		{"PASSWORD-ALGORITHM not offered", with(func(r *request) { r.algs = sha; r.alg = 7 }), client, t0, 400},
		{"SHA-256 chosen, MD5 key", with(func(r *request) { r.algs = sha; r.alg = stun.PasswordSHA256 }), client, t0, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustFail(t, a, tt.req.build(t), tt.from, tt.now, tt.code)
			if c.Reason == "" || c.Detail == "" {
				t.Errorf("challenge without reason or detail: %+v", c)
			}
			// Whatever failed, the challenge is well formed, and for
			// 401/438 the fresh nonce works.
			o2 := challengeOf(t, a, c, tt.from, tt.now)
			if tt.code == 400 {
				return
			}
			r := good
			r.realm, r.nonce = o2.realm, o2.nonce
			mustPass(t, a, r.build(t), tt.from, tt.now)
		})
	}
}

func TestUsernameInvalidUTF8(t *testing.T) {
	a := newAuth(t, Config{})
	o := challenge401(t, a, client, t0)
	m := request{username: "al\xffice", realm: o.realm, nonce: o.nonce, password: "p"}.build(t)
	mustFail(t, a, m, client, t0, 400)
}

// flip changes one character in the middle of s.
func flip(s string) string {
	b := []byte(s)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestMD5Disabled(t *testing.T) {
	a := newAuth(t, Config{Algorithms: []stun.PasswordAlgorithm{stun.PasswordSHA256}})
	o := challenge401(t, a, client, t0)
	if len(o.algs) != 1 || o.algs[0] != stun.PasswordSHA256 {
		t.Fatalf("algorithms %v", o.algs)
	}
	old := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}
	mustFail(t, a, old.build(t), client, t0, 400)
	// A nonce without the cookie is not one this server issues: 438.
	noCookie := old
	noCookie.nonce = "plain-nonce"
	mustFail(t, a, noCookie.build(t), client, t0, 438)
	r := old
	r.keyAlg, r.alg, r.algs = stun.PasswordSHA256, stun.PasswordSHA256, o.algs
	mustPass(t, a, r.build(t), client, t0)
}

func TestSharedNonceSecret(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newAuth(t, Config{NonceSecret: secret})
	b := newAuth(t, Config{NonceSecret: secret, NonceTTL: time.Hour})
	c := newAuth(t, Config{NonceSecret: []byte("another secret, 16+ bytes")})
	o := challenge401(t, a, client, t0)
	m := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}.build(t)
	mustPass(t, b, m, client, t0.Add(time.Minute))
	// The expiry is in the nonce: b's longer TTL does not extend a's.
	mustFail(t, b, m, client, t0.Add(DefaultNonceTTL), 438)
	mustFail(t, c, m, client, t0, 438)
	// Another realm with the same secret does not take the nonce either.
	d := newAuth(t, Config{NonceSecret: secret, Realm: "other.example"})
	m2 := request{username: "alice", realm: "other.example", nonce: o.nonce, password: "wonderland"}.build(t)
	mustFail(t, d, m2, client, t0, 438)
}

func TestNonceTTL(t *testing.T) {
	a := newAuth(t, Config{NonceTTL: 30 * time.Second})
	o := challenge401(t, a, client, t0)
	m := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}.build(t)
	mustPass(t, a, m, client, t0.Add(29*time.Second))
	mustFail(t, a, m, client, t0.Add(30*time.Second), 438)
}

func TestREST(t *testing.T) {
	a := newAuth(t, Config{RESTSecrets: []string{"new-secret", "old-secret"}})
	o := challenge401(t, a, client, t0)
	rest := func(secret string, expiry time.Time) request {
		u, p := turn.RESTCredentials(secret, "carol", expiry)
		return request{username: u, realm: o.realm, nonce: o.nonce, password: p}
	}
	t.Run("current secret", func(t *testing.T) {
		res := mustPass(t, a, rest("new-secret", t0.Add(time.Hour)).build(t), client, t0)
		if !res.REST || !strings.HasSuffix(res.Username, ":carol") {
			t.Errorf("Result = %+v", res)
		}
	})
	t.Run("expiry without user part", func(t *testing.T) {
		// coturn's turnutils_uclient -W sends just "EXPIRY".
		u, p := turn.RESTCredentials("new-secret", "", t0.Add(time.Hour))
		m := request{username: u, realm: o.realm, nonce: o.nonce, password: p}.build(t)
		if res := mustPass(t, a, m, client, t0); !res.REST || strings.Contains(res.Username, ":") {
			t.Errorf("Result = %+v", res)
		}
	})
	t.Run("rotated-out secret still verifies", func(t *testing.T) {
		mustPass(t, a, rest("old-secret", t0.Add(time.Hour)).build(t), client, t0)
	})
	t.Run("SHA-256", func(t *testing.T) {
		r := rest("new-secret", t0.Add(time.Hour))
		r.keyAlg, r.alg, r.algs, r.sha256 = stun.PasswordSHA256, stun.PasswordSHA256, o.algs, true
		mustPass(t, a, r.build(t), client, t0)
	})
	t.Run("expired", func(t *testing.T) {
		c := mustFail(t, a, rest("new-secret", t0).build(t), client, t0, 401)
		if !strings.Contains(c.Detail, "expired") || c.Reason != "Credentials Expired" || c.Why != ExpiredREST {
			t.Errorf("challenge %+v", c)
		}
	})
	t.Run("expired, wrong HMAC: no hint that REST is in use", func(t *testing.T) {
		c := mustFail(t, a, rest("guessed", t0.Add(-time.Hour)).build(t), client, t0, 401)
		if c.Reason != stun.ReasonPhrase(401) || c.Why != BadIntegrity {
			t.Errorf("challenge %+v, want the plain 401 of a bad password", c)
		}
		// What a stranger sees is what an unknown user gets.
		m := request{username: "mallory", realm: o.realm, nonce: o.nonce, password: "x"}.build(t)
		u := mustFail(t, a, m, client, t0, 401)
		if u.Reason != c.Reason {
			t.Errorf("unknown user %q, expired REST with a wrong HMAC %q", u.Reason, c.Reason)
		}
	})
	t.Run("expired, after the allocation", func(t *testing.T) {
		// Refresh, CreatePermission, ChannelBind, Connect and
		// ConnectionBind act on an allocation made while the credential
		// was valid: they pass, and the Result says when it expired.
		for _, m := range []stun.Method{stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind,
			stun.MethodConnect, stun.MethodConnectionBind} {
			r := rest("new-secret", t0.Add(-time.Minute))
			r.method = m
			res := mustPass(t, a, r.build(t), client, t0)
			if !res.REST || !res.Expires.Equal(t0.Add(-time.Minute)) {
				t.Errorf("%v: Result = %+v", m, res)
			}
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		if c := mustFail(t, a, rest("guessed", t0.Add(time.Hour)).build(t), client, t0, 401); c.Why != BadIntegrity {
			t.Errorf("Why = %v", c.Why)
		}
	})
	t.Run("static user with REST shaped name", func(t *testing.T) {
		b := newAuth(t, Config{RESTSecrets: []string{"s"}, Users: StaticUsers{"1:dave": "pw"}})
		o := challenge401(t, b, client, t0)
		m := request{username: "1:dave", realm: o.realm, nonce: o.nonce, password: "pw"}.build(t)
		if res := mustPass(t, b, m, client, t0); res.REST {
			t.Errorf("Result = %+v, want a static user", res)
		}
	})
	t.Run("REST only, plain user", func(t *testing.T) {
		m := request{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"}.build(t)
		mustFail(t, a, m, client, t0, 401)
	})
	t.Run("REST disabled", func(t *testing.T) {
		b := newAuth(t, Config{})
		o := challenge401(t, b, client, t0)
		u, p := turn.RESTCredentials("new-secret", "carol", t0.Add(time.Hour))
		m := request{username: u, realm: o.realm, nonce: o.nonce, password: p}.build(t)
		mustFail(t, b, m, client, t0, 401)
	})
}

func TestUserhash(t *testing.T) {
	a := newAuth(t, Config{RESTSecrets: []string{"s"}, Users: StaticUsers{"alice": "wonderland"}})
	o := challenge401(t, a, client, t0)
	r := request{username: "alice", userhash: true, realm: o.realm, nonce: o.nonce, password: "wonderland"}
	if res := mustPass(t, a, r.build(t), client, t0); res.Username != "alice" {
		t.Errorf("Username = %q", res.Username)
	}
	r.username = "nobody"
	mustFail(t, a, r.build(t), client, t0, 401)

	// Users that cannot resolve USERHASH: 401, and no anonymity bit.
	b := newAuth(t, Config{Users: stubUsers{}})
	o = challenge401(t, b, client, t0)
	if f, _ := stun.NonceFeatures(o.nonce); f&stun.FeatureUsernameAnonymity != 0 {
		t.Errorf("features %#x announce username anonymity", f)
	}
	r = request{username: "alice", userhash: true, realm: o.realm, nonce: o.nonce, password: "wonderland"}
	mustFail(t, b, r.build(t), client, t0, 401)
}

// stubUsers is a KeyLookup without UserhashLookup; it knows alice, fails
// for "broken", and knows nobody else.
type stubUsers struct{}

var errDB = errors.New("database is on fire")

func (stubUsers) Key(_ context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	switch username {
	case "alice":
		return stun.LongTermKey(alg, username, realm, "wonderland")
	case "broken":
		return nil, errDB
	}
	return nil, ErrUnknownUser
}

func TestLookupError(t *testing.T) {
	a := newAuth(t, Config{Users: stubUsers{}})
	o := challenge401(t, a, client, t0)
	m := request{username: "broken", realm: o.realm, nonce: o.nonce, password: "x"}.build(t)
	c := mustFail(t, a, m, client, t0, 500)
	if !strings.Contains(c.Detail, errDB.Error()) {
		t.Errorf("detail %q", c.Detail)
	}
	if o := challengeOf(t, a, c, client, t0); o.m.Has(stun.AttrNonce) {
		t.Error("500 carries a NONCE")
	}
}

func TestStaticUsers(t *testing.T) {
	u := StaticUsers{"alice": "wonderland"}
	ctx := context.Background()
	for _, alg := range []stun.PasswordAlgorithm{stun.PasswordMD5, stun.PasswordSHA256} {
		got, err := u.Key(ctx, "alice", testRealm, alg)
		want, _ := stun.LongTermKey(alg, "alice", testRealm, "wonderland")
		if err != nil || string(got) != string(want) {
			t.Errorf("Key(%v) = %x, %v", alg, got, err)
		}
	}
	if _, err := u.Key(ctx, "bob", testRealm, stun.PasswordMD5); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	h, _ := stun.Userhash("alice", testRealm)
	if name, err := u.ByUserhash(ctx, h, testRealm); err != nil || name != "alice" {
		t.Errorf("ByUserhash = %q, %v", name, err)
	}
	if _, err := u.ByUserhash(ctx, h, "other"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("ByUserhash in another realm: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	users := StaticUsers{}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"minimal", Config{Realm: "r", Users: users}, ""},
		{"REST only", Config{Realm: "r", RESTSecrets: []string{"s"}}, ""},
		{"no realm", Config{Users: users}, "Realm"},
		{"realm too long", Config{Realm: strings.Repeat("r", 600), Users: users}, "Realm"},
		{"realm with control char", Config{Realm: "a\x00b", Users: users}, "Realm"},
		{"nobody", Config{Realm: "r"}, "neither"},
		{"empty secret", Config{Realm: "r", RESTSecrets: []string{"s", ""}}, "RESTSecrets[1]"},
		{"short nonce secret", Config{Realm: "r", Users: users, NonceSecret: []byte("short")}, "NonceSecret"},
		{"negative TTL", Config{Realm: "r", Users: users, NonceTTL: -1}, "NonceTTL"},
		{"empty algorithms", Config{Realm: "r", Users: users, Algorithms: []stun.PasswordAlgorithm{}}, "Algorithms"},
		{"unknown algorithm", Config{Realm: "r", Users: users, Algorithms: []stun.PasswordAlgorithm{3}}, "Algorithms[0]"},
		{"duplicate algorithm", Config{Realm: "r", Users: users, Algorithms: []stun.PasswordAlgorithm{1, 2, 1}}, "Algorithms[2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New: %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// TestConfigCopied checks that New keeps its own copies.
func TestConfigCopied(t *testing.T) {
	secret := []byte("0123456789abcdef")
	rest := []string{"s1"}
	cfg := Config{Realm: testRealm, RESTSecrets: rest, NonceSecret: secret}
	a := newAuth(t, cfg)
	o := challenge401(t, a, client, t0)
	secret[0], rest[0] = 'X', "changed"
	u, p := turn.RESTCredentials("s1", "x", t0.Add(time.Hour))
	m := request{username: u, realm: o.realm, nonce: o.nonce, password: p}.build(t)
	mustPass(t, a, m, client, t0)
}
