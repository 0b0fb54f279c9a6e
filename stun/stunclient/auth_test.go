package stunclient

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// authServer is a minimal long-term credential server (RFC 8489, Section
// 9.2.4) for the tests: one user, one realm, a nonce the test can rotate.
type authServer struct {
	user, pass, realm string
	features          uint32                         // nonce cookie bits; 0 and !cookie: a legacy nonce
	cookie            bool                           // prefix nonces with the nonce cookie
	algs              []stun.PasswordAlgorithmParams // PASSWORD-ALGORITHMS to offer; nil: none
	noAlgsInChallenge bool                           // drop PASSWORD-ALGORITHMS (a bid-down on the path)
	badResponseMI     bool                           // sign successes with the wrong key

	mu    sync.Mutex
	nonce string
	gen   int
}

func (s *authServer) currentNonce() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nonce == "" {
		s.rotateLocked()
	}
	return s.nonce
}

func (s *authServer) rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotateLocked()
}

func (s *authServer) rotateLocked() {
	s.gen++
	var b []byte
	if s.cookie {
		b = stun.AppendNonceCookie(b, s.features)
	}
	s.nonce = string(append(b, "n"+string(rune('a'+s.gen))...))
}

func (s *authServer) challenge(req *stun.Message, code int) []byte {
	b := errorResponse(req, code)
	b = stun.AppendAttrString(b, stun.AttrRealm, s.realm)
	b = stun.AppendAttrString(b, stun.AttrNonce, s.currentNonce())
	if s.algs != nil && !s.noAlgsInChallenge {
		b = stun.AppendPasswordAlgorithms(b, s.algs)
	}
	return b
}

func (s *authServer) handle(req *stun.Message, from netip.AddrPort) [][]byte {
	has256, has1 := req.Has(stun.AttrMessageIntegritySHA256), req.Has(stun.AttrMessageIntegrity)
	if !has256 && !has1 {
		return [][]byte{s.challenge(req, stun.CodeUnauthorized)}
	}
	realm, _ := req.Realm()
	nonce, _ := req.Nonce()
	alg := stun.PasswordMD5
	if v, ok := req.Get(stun.AttrPasswordAlgorithm); ok {
		a, err := stun.ParsePasswordAlgorithm(v)
		if err != nil {
			return [][]byte{errorResponse(req, stun.CodeBadRequest)}
		}
		alg = a.Algorithm
	}
	user := s.user
	if v, ok := req.Get(stun.AttrUserhash); ok {
		h, _ := stun.Userhash(s.user, s.realm)
		if string(v) != string(h[:]) {
			return [][]byte{s.challenge(req, stun.CodeUnauthorized)}
		}
	} else if u, _ := req.Username(); u != s.user {
		return [][]byte{s.challenge(req, stun.CodeUnauthorized)}
	}
	key, _ := stun.LongTermKey(alg, user, s.realm, s.pass)
	var err error
	if has256 {
		err = req.CheckIntegritySHA256(key)
	} else {
		err = req.CheckIntegrity(key)
	}
	if err != nil || realm != s.realm {
		return [][]byte{s.challenge(req, stun.CodeUnauthorized)}
	}
	if nonce != s.currentNonce() {
		return [][]byte{s.challenge(req, stun.CodeStaleNonce)}
	}
	if s.badResponseMI {
		key = []byte("not the key")
	}
	b := bindingSuccess(req, from)
	if has256 {
		return [][]byte{stun.AppendMessageIntegritySHA256(b, key)}
	}
	return [][]byte{stun.AppendMessageIntegrity(b, key)}
}

type authCase struct {
	name string
	srv  *authServer
	cfg  Config
	// check runs against the server's requests after the first Binding.
	check func(t *testing.T, reqs []request)
	// wantErr, if set, is what the first Binding must fail with.
	wantErr func(error) bool
	// wantRequests is how many requests the first Binding sends.
	wantRequests int
}

func hasAll(t *testing.T, m *stun.Message, want ...stun.AttrType) {
	t.Helper()
	for _, a := range want {
		if !m.Has(a) {
			t.Errorf("request lacks %s", a)
		}
	}
}

func hasNone(t *testing.T, m *stun.Message, unwanted ...stun.AttrType) {
	t.Helper()
	for _, a := range unwanted {
		if m.Has(a) {
			t.Errorf("request has %s", a)
		}
	}
}

func isCode(code int) func(error) bool {
	return func(err error) bool {
		se, ok := errors.AsType[*stun.Error](err)
		return ok && se.Code == code
	}
}

func TestLongTermCredentials(t *testing.T) {
	creds := Config{Username: "user", Password: "pass"}
	both := []stun.PasswordAlgorithmParams{{Algorithm: stun.PasswordSHA256}, {Algorithm: stun.PasswordMD5}}
	cases := []authCase{{
		name:         "legacy MD5",
		srv:          &authServer{user: "user", pass: "pass", realm: "example.org"},
		cfg:          creds,
		wantRequests: 2,
		check: func(t *testing.T, reqs []request) {
			first, retry := reqs[0].msg, reqs[1].msg
			hasNone(t, first, stun.AttrUsername, stun.AttrRealm, stun.AttrNonce, stun.AttrMessageIntegrity)
			hasAll(t, retry, stun.AttrUsername, stun.AttrRealm, stun.AttrNonce, stun.AttrMessageIntegrity)
			hasNone(t, retry, stun.AttrMessageIntegritySHA256, stun.AttrPasswordAlgorithm, stun.AttrPasswordAlgorithms, stun.AttrUserhash)
		},
	}, {
		name: "SHA-256 offered first",
		srv: &authServer{user: "user", pass: "pass", realm: "example.org", cookie: true,
			features: stun.FeaturePasswordAlgorithms, algs: both},
		cfg:          creds,
		wantRequests: 2,
		check: func(t *testing.T, reqs []request) {
			retry := reqs[1].msg
			hasAll(t, retry, stun.AttrUsername, stun.AttrRealm, stun.AttrNonce,
				stun.AttrPasswordAlgorithms, stun.AttrPasswordAlgorithm, stun.AttrMessageIntegritySHA256)
			hasNone(t, retry, stun.AttrMessageIntegrity)
			v, _ := retry.Get(stun.AttrPasswordAlgorithm)
			if a, err := stun.ParsePasswordAlgorithm(v); err != nil || a.Algorithm != stun.PasswordSHA256 {
				t.Errorf("PASSWORD-ALGORITHM %v, %v", a.Algorithm, err)
			}
		},
	}, {
		name: "first supported of the server's list",
		srv: &authServer{user: "user", pass: "pass", realm: "example.org", cookie: true,
			features: stun.FeaturePasswordAlgorithms,
			algs:     []stun.PasswordAlgorithmParams{{Algorithm: 0x0009}, {Algorithm: stun.PasswordMD5}, {Algorithm: stun.PasswordSHA256}}},
		cfg:          creds,
		wantRequests: 2,
		check: func(t *testing.T, reqs []request) {
			retry := reqs[1].msg
			v, _ := retry.Get(stun.AttrPasswordAlgorithm)
			if a, err := stun.ParsePasswordAlgorithm(v); err != nil || a.Algorithm != stun.PasswordMD5 {
				t.Errorf("PASSWORD-ALGORITHM %v, %v", a.Algorithm, err)
			}
			// With PASSWORD-ALGORITHMS, SHA-256 integrity only.
			hasAll(t, retry, stun.AttrMessageIntegritySHA256)
			hasNone(t, retry, stun.AttrMessageIntegrity)
		},
	}, {
		name: "username anonymity",
		srv: &authServer{user: "user", pass: "pass", realm: "example.org", cookie: true,
			features: stun.FeaturePasswordAlgorithms | stun.FeatureUsernameAnonymity, algs: both},
		cfg:          creds,
		wantRequests: 2,
		check: func(t *testing.T, reqs []request) {
			hasAll(t, reqs[1].msg, stun.AttrUserhash)
			hasNone(t, reqs[1].msg, stun.AttrUsername)
		},
	}, {
		name:         "wrong password: a second 401 is final",
		srv:          &authServer{user: "user", pass: "pass", realm: "example.org"},
		cfg:          Config{Username: "user", Password: "wrong"},
		wantRequests: 2,
		wantErr:      isCode(stun.CodeUnauthorized),
	}, {
		name:         "no credentials configured",
		srv:          &authServer{user: "user", pass: "pass", realm: "example.org"},
		wantRequests: 1,
		wantErr: func(err error) bool {
			return errors.Is(err, ErrNoCredentials) && isCode(stun.CodeUnauthorized)(err)
		},
	}, {
		name: "bid-down: PASSWORD-ALGORITHMS removed",
		srv: &authServer{user: "user", pass: "pass", realm: "example.org", cookie: true,
			features: stun.FeaturePasswordAlgorithms, algs: both, noAlgsInChallenge: true},
		cfg:          creds,
		wantRequests: 1,
		wantErr: func(err error) bool {
			return errors.Is(err, ErrBidDown) && isCode(stun.CodeUnauthorized)(err)
		},
	}, {
		name: "no supported algorithm",
		srv: &authServer{user: "user", pass: "pass", realm: "example.org", cookie: true,
			features: stun.FeaturePasswordAlgorithms, algs: []stun.PasswordAlgorithmParams{{Algorithm: 0x0009}}},
		cfg:          creds,
		wantRequests: 1,
		wantErr:      isCode(stun.CodeUnauthorized),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newMemNet()
				srv := serveMem(t, n.listen(t, serverAddr), tc.srv.handle)
				c := mustNew(t, n.listen(t, clientAddr), tc.cfg)
				res, err := c.Binding(t.Context(), server)
				reqs := srv.requests()
				if len(reqs) != tc.wantRequests {
					t.Fatalf("%d requests, want %d (err %v)", len(reqs), tc.wantRequests, err)
				}
				if tc.wantErr != nil {
					if !tc.wantErr(err) {
						t.Fatalf("err = %v", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !res.Response.Authenticated || res.Mapped != netip.MustParseAddrPort(clientAddr) {
					t.Errorf("result %+v, authenticated %v", res, res.Response.Authenticated)
				}
				tc.check(t, reqs)

				// RFC 8489, Section 9.2.3.2: the next request carries the
				// cached credentials at once.
				if _, err := c.Binding(t.Context(), server); err != nil {
					t.Fatal(err)
				}
				reqs = srv.requests()
				if len(reqs) != tc.wantRequests+1 {
					t.Fatalf("second Binding: %d requests in all, want %d", len(reqs), tc.wantRequests+1)
				}
				if n1, n2 := reqs[tc.wantRequests].msg.Get(stun.AttrNonce); !n2 || string(n1) != tc.srv.currentNonce() {
					t.Errorf("cached request nonce %q", n1)
				}
			})
		})
	}
}

// TestStaleNonce: a cached nonce that the server no longer accepts gets
// 438, and the client retries at once with the new nonce.
func TestStaleNonce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &authServer{user: "user", pass: "pass", realm: "example.org"}
		n := newMemNet()
		srv := serveMem(t, n.listen(t, serverAddr), as.handle)
		c := mustNew(t, n.listen(t, clientAddr), Config{Username: "user", Password: "pass"})
		if _, err := c.Binding(t.Context(), server); err != nil {
			t.Fatal(err)
		}
		old := as.currentNonce()
		as.rotate()
		res, err := c.Binding(t.Context(), server)
		if err != nil {
			t.Fatal(err)
		}
		reqs := srv.requests()
		if len(reqs) != 4 {
			t.Fatalf("%d requests, want 2 + 2", len(reqs))
		}
		if v, _ := reqs[2].msg.Get(stun.AttrNonce); string(v) != old {
			t.Errorf("third request nonce %q, want the cached %q", v, old)
		}
		if v, _ := reqs[3].msg.Get(stun.AttrNonce); string(v) != as.currentNonce() {
			t.Errorf("retry nonce %q, want %q", v, as.currentNonce())
		}
		if !res.Response.Authenticated {
			t.Error("response not authenticated")
		}
	})
}

// TestResponseIntegrity: over UDP a response that fails its integrity
// check is ignored and retransmission goes on; if nothing better comes,
// the transaction reports the integrity failure rather than a timeout.
// RFC 8489, Section 9.2.5.
func TestResponseIntegrity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &authServer{user: "user", pass: "pass", realm: "example.org", badResponseMI: true}
		n := newMemNet()
		srv := serveMem(t, n.listen(t, serverAddr), as.handle)
		c := mustNew(t, n.listen(t, clientAddr), Config{Username: "user", Password: "pass",
			Retransmit: Retransmit{RTO: 100 * time.Millisecond, Rc: 3, Rm: 2}})
		_, err := c.Binding(t.Context(), server)
		if !errors.Is(err, stun.ErrIntegrity) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want stun.ErrIntegrity", err)
		}
		if got := len(srv.requests()); got != 1+3 {
			t.Errorf("%d requests, want the challenged one and 3 transmissions", got)
		}
		if s := c.Stats(); s.Discarded != 3 {
			t.Errorf("stats %+v, want 3 discarded", s)
		}
	})
}
