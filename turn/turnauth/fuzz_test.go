package turnauth

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// FuzzAuthenticate feeds arbitrary messages to Authenticate and builds
// whatever response it asks for: nothing may panic, and every verdict is
// one of the documented codes.
func FuzzAuthenticate(f *testing.F) {
	a := newAuth(f, Config{
		Users:       StaticUsers{"alice": "wonderland"},
		RESTSecrets: []string{"s"},
		NonceSecret: []byte("fuzzing nonce secret"),
	})
	from := netip.MustParseAddrPort("192.0.2.1:1234")
	o := challenge401(f, a, from, t0)
	u, p := turn.RESTCredentials("s", "x", t0.Add(time.Hour))
	for _, r := range []request{
		{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland"},
		{username: "alice", realm: o.realm, nonce: o.nonce, password: "wonderland", keyAlg: stun.PasswordSHA256,
			alg: stun.PasswordSHA256, algs: o.algs, sha256: true},
		{username: "alice", userhash: true, realm: o.realm, nonce: o.nonce, password: "wonderland"},
		{username: u, realm: o.realm, nonce: o.nonce, password: p},
		{noMI: true, omit: stun.AttrUsername},
		{username: "alice", realm: o.realm, omit: stun.AttrNonce, password: "x"},
	} {
		f.Add(r.build(f).Raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m stun.Message
		if m.Parse(b) != nil {
			return
		}
		res, c := a.Authenticate(context.Background(), &m, Client{Addr: from}, t0)
		out := stun.AppendHeader(nil, errType, m.TransactionID)
		if c == nil {
			if len(res.Key) == 0 || res.Username == "" {
				t.Fatalf("success without key or user: %+v", res)
			}
			res.AppendSignature(out)
			return
		}
		switch c.Code {
		case 400, 401, 438, 500:
		default:
			t.Fatalf("unexpected code %d", c.Code)
		}
		out = a.AppendChallenge(out, c, Client{Addr: from}, t0)
		var back stun.Message
		if err := back.Parse(out); err != nil {
			t.Fatalf("challenge does not parse: %v", err)
		}
	})
}
