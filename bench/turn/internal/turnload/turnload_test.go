package turnload

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/ibserver"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

func TestRequestsParse(t *testing.T) {
	kr := &Keyring{Creds: Creds{Username: "u", Password: "p"}}
	var a Auth
	peer := netip.MustParseAddrPort("127.0.0.1:40000")
	build := func(id stun.TransactionID) map[string][]byte {
		return map[string][]byte{
			"allocate":   AppendAllocate(nil, id, &a),
			"delete":     AppendDelete(nil, id, &a),
			"permission": AppendCreatePermission(nil, id, peer, &a),
			"channel":    AppendChannelBind(nil, id, turn.MinChannel, peer, &a),
		}
	}
	id := stun.NewTransactionID()
	for name, b := range build(id) {
		var m stun.Message
		if err := m.Parse(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := m.CheckFingerprint(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if m.Has(stun.AttrMessageIntegrity) {
			t.Errorf("%s: credentials before any challenge", name)
		}
	}

	// A 401 with realm and nonce teaches the key.
	chal := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassError}, id)
	chal = stun.AppendErrorCode(chal, stun.CodeUnauthorized, "")
	chal = stun.AppendAttrString(chal, stun.AttrRealm, "bench")
	chal = stun.AppendAttrString(chal, stun.AttrNonce, "n1")
	var m stun.Message
	if err := m.Parse(chal); err != nil {
		t.Fatal(err)
	}
	r, err := ParseReply(&m, stun.MethodAllocate)
	if err != nil || r.Code != stun.CodeUnauthorized {
		t.Fatalf("ParseReply(401) = %+v, %v", r, err)
	}
	if !a.Learn(&r, kr) || !a.Ready() {
		t.Fatal("Learn(401) did not make the Auth ready")
	}
	key, _ := stun.LongTermKey(stun.PasswordMD5, "u", "bench", "p")
	for name, b := range build(stun.NewTransactionID()) {
		var m stun.Message
		if err := m.Parse(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := m.CheckIntegrity(key); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if n, _ := m.Nonce(); n != "n1" {
			t.Errorf("%s: nonce %q", name, n)
		}
	}

	// A 438 replaces the nonce; an error of another code teaches nothing.
	r = Reply{Code: stun.CodeStaleNonce, Nonce: []byte("n2")}
	if !a.Learn(&r, kr) || string(a.Nonce) != "n2" {
		t.Errorf("Learn(438): nonce %q", a.Nonce)
	}
	r = Reply{Code: stun.CodeForbidden}
	if a.Learn(&r, kr) {
		t.Error("Learn(403) asked for a retry")
	}

	// A response of another method is not a reply.
	if _, err := ParseReply(&m, stun.MethodRefresh); !errors.Is(err, ErrNotResponse) {
		t.Errorf("ParseReply with the wrong method: %v", err)
	}
}

func startServer(t *testing.T) *ibserver.Server {
	t.Helper()
	s, err := ibserver.Start(ibserver.Config{
		Listen:     netip.MustParseAddrPort("127.0.0.1:0"),
		Users:      map[string]string{"u": "p"},
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		UDPSockets: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDo(t *testing.T) {
	before := runtime.NumGoroutine()
	s := startServer(t)
	defer s.Close()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kr := &Keyring{Creds: Creds{Username: "u", Password: "p"}}
	var a Auth
	r, err := Do(conn, stun.MethodAllocate, AppendAllocate, &a, kr)
	if err != nil {
		t.Fatal(err)
	}
	if err := loopback.Check(r.Relayed); err != nil {
		t.Fatal(err)
	}
	// A second Allocate on the same 5-tuple is refused: 437.
	_, err = Do(conn, stun.MethodAllocate, AppendAllocate, &a, kr)
	var se *stun.Error
	if !errors.As(err, &se) || se.Code != stun.CodeAllocationMismatch {
		t.Errorf("second Allocate: %v, want 437", err)
	}
	// Wrong credentials end in 401, not a loop.
	conn2, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	var a2 Auth
	_, err = Do(conn2, stun.MethodAllocate, AppendAllocate, &a2, &Keyring{Creds: Creds{Username: "u", Password: "wrong"}})
	if !errors.As(err, &se) || se.Code != stun.CodeUnauthorized {
		t.Errorf("Allocate with a wrong password: %v, want 401", err)
	}
	conn.Close()
	conn2.Close()
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	testutil.CheckGoroutines(t, before)
}

func TestStartCPUProfile(t *testing.T) {
	stop, err := StartCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	if stop, err = StartCPUProfile(path); err != nil {
		t.Fatal(err)
	}
	stop()
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Errorf("profile %s: %v, %v", path, st, err)
	}
	if _, err := StartCPUProfile(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Error("an uncreatable profile path was accepted")
	}
}

func TestParseCreds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Creds
		good bool
	}{
		{"u:p", Creds{"u", "p"}, true},
		{"u:", Creds{"u", ""}, true},
		{"u:p:q", Creds{"u", "p:q"}, true},
		{"", Creds{}, false},
		{"u", Creds{}, false},
		{":p", Creds{}, false},
	} {
		got, err := ParseCreds(tc.in)
		if (err == nil) != tc.good || got != tc.want {
			t.Errorf("ParseCreds(%q) = %+v, %v; want %+v, success %v", tc.in, got, err, tc.want, tc.good)
		}
	}
}
