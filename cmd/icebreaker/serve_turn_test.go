package main

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// turnClient is a minimal TURN client over UDP or TCP, built from the wire
// packages, for testing the wiring of `icebreaker serve`.
type turnClient struct {
	t          *testing.T
	conn       net.Conn // *net.UDPConn or *net.TCPConn
	stream     bool     // TCP: messages are framed by their length
	user, pass string
	realm      string
	nonce      string
	key        []byte // MD5 long-term key, once the realm is known
}

// dialTURN opens a UDP socket towards server; the test's cleanup closes it.
func dialTURN(t *testing.T, server netip.AddrPort, user, pass string) *turnClient {
	return dialTURNOver(t, "udp", server, user, pass)
}

// dialTURNOver opens a UDP socket or a TCP connection to server.
func dialTURNOver(t *testing.T, network string, server netip.AddrPort, user, pass string) *turnClient {
	t.Helper()
	conn, err := net.Dial(network, server.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &turnClient{t: t, conn: conn, stream: network == "tcp", user: user, pass: pass}
}

func (c *turnClient) local() netip.AddrPort {
	ap := netip.MustParseAddrPort(c.conn.LocalAddr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// read reads one message: a datagram, or one length-framed STUN message
// from a stream.
func (c *turnClient) read(deadline time.Time) ([]byte, error) {
	c.conn.SetReadDeadline(deadline)
	if !c.stream {
		buf := make([]byte, 1500)
		n, err := c.conn.Read(buf)
		return buf[:n], err
	}
	hdr := make([]byte, stun.HeaderSize)
	if _, err := io.ReadFull(c.conn, hdr); err != nil {
		return nil, err
	}
	msg := make([]byte, stun.HeaderSize+int(binary.BigEndian.Uint16(hdr[2:4])))
	copy(msg, hdr)
	_, err := io.ReadFull(c.conn, msg[stun.HeaderSize:])
	return msg, err
}

// do sends a request of method with the attributes attrs appends,
// authenticated once a nonce is known, and returns the response. Over UDP
// it retransmits a few times: loopback does not lose packets, but a busy
// machine may drop one.
func (c *turnClient) do(method stun.Method, attrs func(b []byte, id stun.TransactionID) []byte) *stun.Message {
	c.t.Helper()
	id := stun.NewTransactionID()
	b := stun.AppendHeader(nil, stun.Type{Method: method, Class: stun.ClassRequest}, id)
	if attrs != nil {
		b = attrs(b, id)
	}
	if c.nonce != "" {
		b = stun.AppendAttrString(b, stun.AttrUsername, c.user)
		b = stun.AppendAttrString(b, stun.AttrRealm, c.realm)
		b = stun.AppendAttrString(b, stun.AttrNonce, c.nonce)
		b = stun.AppendMessageIntegrity(b, c.key)
	}
	b = stun.AppendFingerprint(b)
	tries, wait := 5, time.Second
	if c.stream {
		tries, wait = 1, serveTimeout
	}
	for range tries {
		if _, err := c.conn.Write(b); err != nil {
			c.t.Fatal(err)
		}
		deadline := time.Now().Add(wait)
		for {
			buf, err := c.read(deadline)
			if err != nil {
				break // retransmit
			}
			var m stun.Message
			if m.Parse(buf) != nil || m.TransactionID != id {
				continue // a Data indication or a late answer
			}
			if m.Type.Method != method || m.Type.Class == stun.ClassRequest || m.Type.Class == stun.ClassIndication {
				c.t.Fatalf("answer to %v is %v", method, m.Type)
			}
			return &m
		}
	}
	c.t.Fatalf("no answer to %v from %v", method, c.conn.RemoteAddr())
	return nil
}

// errorCode returns the response's error code, 0 for a success.
func errorCode(t *testing.T, m *stun.Message) int {
	t.Helper()
	if m.Type.Class == stun.ClassSuccess {
		return 0
	}
	code, _, err := m.ErrorCode()
	if err != nil {
		t.Fatalf("%v without a valid ERROR-CODE: %v", m.Type, err)
	}
	return code
}

func allocateAttrs(b []byte, _ stun.TransactionID) []byte {
	return turn.AppendRequestedTransport(b, turn.ProtoUDP)
}

// challenge sends an unauthenticated Allocate, checks the 401, and keeps
// its realm and nonce.
func (c *turnClient) challenge() {
	c.t.Helper()
	c.nonce = ""
	m := c.do(stun.MethodAllocate, allocateAttrs)
	if code := errorCode(c.t, m); code != stun.CodeUnauthorized {
		c.t.Fatalf("unauthenticated Allocate: %d, want 401", code)
	}
	var err error
	if c.realm, err = m.Realm(); err != nil {
		c.t.Fatalf("401 without REALM: %v", err)
	}
	if c.nonce, err = m.Nonce(); err != nil {
		c.t.Fatalf("401 without NONCE: %v", err)
	}
	if c.key, err = stun.LongTermKey(stun.PasswordMD5, c.user, c.realm, c.pass); err != nil {
		c.t.Fatal(err)
	}
}

// tryAllocate runs the 401 challenge, then the authenticated Allocate,
// and returns its response.
func (c *turnClient) tryAllocate() *stun.Message {
	c.t.Helper()
	c.challenge()
	return c.do(stun.MethodAllocate, allocateAttrs)
}

// allocate allocates a UDP relay and returns the relayed address after
// checking the response: integrity, XOR-MAPPED-ADDRESS and LIFETIME.
func (c *turnClient) allocate() netip.AddrPort {
	c.t.Helper()
	m := c.tryAllocate()
	if code := errorCode(c.t, m); code != 0 {
		reason := ""
		if _, r, err := m.ErrorCode(); err == nil {
			reason = r
		}
		c.t.Fatalf("authenticated Allocate: error %d %s", code, reason)
	}
	if err := m.CheckIntegrity(c.key); err != nil {
		c.t.Errorf("Allocate success: MESSAGE-INTEGRITY: %v", err)
	}
	if mapped, err := m.XORMappedAddress(); err != nil || mapped != c.local() {
		c.t.Errorf("XOR-MAPPED-ADDRESS = %v, %v; want %v", mapped, err, c.local())
	}
	if v, ok := m.Get(stun.AttrLifetime); !ok {
		c.t.Error("no LIFETIME")
	} else if d, err := turn.ParseLifetime(v); err != nil || d != 600*time.Second {
		c.t.Errorf("LIFETIME = %v, %v; want 600s", d, err)
	}
	relayed, err := m.XORAddress(stun.AttrXORRelayedAddress)
	if err != nil {
		c.t.Fatalf("XOR-RELAYED-ADDRESS: %v", err)
	}
	return relayed
}

// createPermission asks for a permission to peer and returns the error
// code (0 for success).
func (c *turnClient) createPermission(peer netip.AddrPort) int {
	c.t.Helper()
	m := c.do(stun.MethodCreatePermission, func(b []byte, id stun.TransactionID) []byte {
		return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
	})
	return errorCode(c.t, m)
}

// turnLine matches the startup line with the realm and the relay.
var turnLine = regexp.MustCompile(`(?m)^TURN: realm "([^"]*)", relay (\S+)`)

func TestServeTURNAllocate(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret", "--relay-ports", "50000-50999")
	udp := r.endpoint(t, "udp")
	m := r.waitFor(t, turnLine)
	if m[1] != "icebreaker" || m[2] != "127.0.0.1," {
		t.Errorf("TURN line: %q", m[0])
	}
	r.waitFor(t, regexp.MustCompile(`(?m)^TURN: 1 static user\(s\), 0 in the user store `))

	c := dialTURN(t, udp, "alice", "secret")
	relayed := c.allocate()
	if relayed.Addr() != netip.MustParseAddr("127.0.0.1") || relayed.Port() < 50000 || relayed.Port() > 50999 {
		t.Errorf("XOR-RELAYED-ADDRESS = %v, want 127.0.0.1 and a port in 50000-50999", relayed)
	}
	if c.realm != "icebreaker" {
		t.Errorf("REALM = %q", c.realm)
	}

	// The TCP listener serves TURN too (RFC 8656, Section 3.1).
	tc := dialTURNOver(t, "tcp", r.endpoint(t, "tcp"), "alice", "secret")
	if relayed := tc.allocate(); relayed.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("XOR-RELAYED-ADDRESS over TCP = %v", relayed)
	}

	// A wrong password gets 401 again.
	bad := dialTURN(t, udp, "alice", "wrong")
	if code := errorCode(t, bad.tryAllocate()); code != stun.CodeUnauthorized {
		t.Errorf("Allocate with a wrong password: %d, want 401", code)
	}

	// The default policy: loopback, its IPv4-mapped form, private
	// addresses and the server's own port are denied.
	for _, peer := range []string{"127.0.0.1:9", "[::ffff:127.0.0.1]:9", "10.0.0.1:9", udp.String(), relayed.String()} {
		if code := c.createPermission(netip.MustParseAddrPort(peer)); code != stun.CodeForbidden {
			t.Errorf("CreatePermission to %s: %d, want 403", peer, code)
		}
	}
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.errb)
	}
}

// TestServeTURNRelay relays a datagram from a client, through a Send
// indication, to a peer on loopback, which --allow-peer permits, and back
// as a Data indication.
func TestServeTURNRelay(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret", "--allow-peer", "127.0.0.0/8")
	udp := r.endpoint(t, "udp")
	c := dialTURN(t, udp, "alice", "secret")
	relayed := c.allocate()

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if code := c.createPermission(peerAddr); code != 0 {
		t.Fatalf("CreatePermission to %v: %d, want success", peerAddr, code)
	}
	// The server's own listeners stay denied whatever the allow list.
	for _, own := range []netip.AddrPort{udp, r.endpoint(t, "tcp")} {
		if code := c.createPermission(own); code != stun.CodeForbidden {
			t.Errorf("CreatePermission to the listener %v: %d, want 403", own, code)
		}
	}

	id := stun.NewTransactionID()
	send := stun.AppendHeader(nil, stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}, id)
	send = stun.AppendXORAddress(send, stun.AttrXORPeerAddress, peerAddr, id)
	send = stun.AppendAttr(send, stun.AttrData, []byte("hello peer"))
	buf := make([]byte, 1500)
	var from netip.AddrPort
	for range 5 { // indications are not retransmitted by the server: resend
		if _, err := c.conn.Write(send); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(time.Second))
		var n int
		if n, from, err = peer.ReadFromUDPAddrPort(buf); err == nil {
			if got := string(buf[:n]); got != "hello peer" {
				t.Fatalf("peer received %q", got)
			}
			break
		}
	}
	if err != nil {
		t.Fatalf("peer received nothing: %v", err)
	}
	if from != relayed {
		t.Errorf("peer received from %v, want the relayed address %v", from, relayed)
	}

	if _, err := peer.WriteToUDPAddrPort([]byte("hello client"), from); err != nil {
		t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(serveTimeout))
	n, err := c.conn.Read(buf)
	if err != nil {
		t.Fatalf("no Data indication: %v", err)
	}
	var m stun.Message
	if err := m.Parse(buf[:n]); err != nil || m.Type != (stun.Type{Method: stun.MethodData, Class: stun.ClassIndication}) {
		t.Fatalf("client received %v (%v), want a Data indication", m.Type, err)
	}
	if data, _ := m.Get(stun.AttrData); string(data) != "hello client" {
		t.Errorf("DATA = %q", data)
	}
	if p, err := m.XORAddress(stun.AttrXORPeerAddress); err != nil || p != peerAddr {
		t.Errorf("XOR-PEER-ADDRESS = %v, %v; want %v", p, err, peerAddr)
	}
	r.stop(t)
}

// TestServeTURNUserStore starts a server with the default configuration
// and no users, as `make run` does, checks that it says how to add one,
// adds one to the store as `icebreaker user add` does, and allocates with
// it without a restart.
func TestServeTURNUserStore(t *testing.T) {
	defer func(d time.Duration) { lazyCheckInterval = d }(lazyCheckInterval)
	lazyCheckInterval = 0 // look for the store file at every lookup

	r := startServe(t, "--port", "0", "--realm", "test realm")
	dbPath := filepath.Join(os.Getenv("ICEBREAKER_DATA_DIR"), "users.db")
	udp := r.endpoint(t, "udp")
	r.waitFor(t, regexp.MustCompile(`(?m)^  icebreaker user add --realm 'test realm' --password-stdin alice$`))
	out := r.out.String()
	for _, want := range []string{
		"TURN: 0 static user(s), 0 in the user store " + dbPath + " (not created yet)",
		"every TURN request gets 401",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("startup message lacks %q:\n%s", want, out)
		}
	}
	if !udp.Addr().IsUnspecified() {
		t.Errorf("default listener %v is not a wildcard", udp)
	}
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), udp.Port())
	c := dialTURN(t, server, "alice", "secret")
	if code := errorCode(t, c.tryAllocate()); code != stun.CodeUnauthorized {
		t.Fatalf("Allocate before the user exists: %d, want 401", code)
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Errorf("the server created the user store %s", dbPath)
	}

	store, err := userstore.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Add(t.Context(), "test realm", "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	relayed := c.allocate()
	if relay := r.waitFor(t, turnLine)[2]; relayed.Addr().String()+"," != relay {
		t.Errorf("relayed address %v, but the server announced relay %s", relayed, relay)
	}
	r.stop(t)

	// A restarted server counts the user.
	r = startServe(t, "--listen", "127.0.0.1", "--port", "0", "--realm", "test realm", "--user-db", dbPath)
	r.waitFor(t, regexp.MustCompile(`TURN: 0 static user\(s\), 1 in the user store `+regexp.QuoteMeta(dbPath)+"\n"))
	c = dialTURN(t, r.endpoint(t, "udp"), "alice", "secret")
	c.allocate()
	r.stop(t)
	if strings.Contains(r.out.String(), "user add") {
		t.Errorf("asks to add a user although there is one:\n%s", r.out)
	}
}

// TestServeTURNFileSettings checks that TURN settings of a configuration
// file reach the server: a quota of one allocation per user, loose channel
// numbers, and an allowed peer range.
func TestServeTURNFileSettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "icebreaker.yaml")
	writeFile(t, file, `listen: ["127.0.0.1:0"]
turn:
  users: [{username: alice, password: secret}]
  loose_channels: true
  policy: {allow_peers: [127.0.0.0/8]}
  quotas: {allocations_per_user: 1}
`)
	r := startServe(t, "--config", file)
	udp := r.endpoint(t, "udp")
	c := dialTURN(t, udp, "alice", "secret")
	c.allocate()
	second := dialTURN(t, udp, "alice", "secret")
	if code := errorCode(t, second.tryAllocate()); code != stun.CodeAllocationQuotaReached {
		t.Errorf("second allocation of a user with a quota of 1: %d, want 486", code)
	}
	bind := func(ch uint16) int {
		return errorCode(t, c.do(stun.MethodChannelBind, func(b []byte, id stun.TransactionID) []byte {
			b = turn.AppendChannelNumber(b, ch)
			return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, netip.MustParseAddrPort("127.0.0.1:9"), id)
		}))
	}
	if code := bind(0x5000); code != 0 {
		t.Errorf("ChannelBind 0x5000 with loose_channels: %d, want success", code)
	}
	r.stop(t)

	r = startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret", "--allow-peer", "127.0.0.0/8")
	c = dialTURN(t, r.endpoint(t, "udp"), "alice", "secret")
	c.allocate()
	if code := bind(0x5000); code != stun.CodeBadRequest {
		t.Errorf("ChannelBind 0x5000 without loose_channels: %d, want 400", code)
	}
	r.stop(t)
}

func TestServeNoTURN(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--no-turn", "--user", "alice:secret")
	c := dialTURN(t, r.endpoint(t, "udp"), "alice", "secret")
	if code := errorCode(t, c.do(stun.MethodAllocate, allocateAttrs)); code != stun.CodeBadRequest {
		t.Errorf("Allocate with TURN off: %d, want 400", code)
	}
	r.stop(t)
	if !strings.Contains(r.out.String(), "icebreaker serve: STUN listening (TURN is off)") || strings.Contains(r.out.String(), "TURN:") {
		t.Errorf("startup message:\n%s", r.out)
	}
}

// setServeEnv makes the servers of a test read environ as their
// environment.
func setServeEnv(t *testing.T, environ ...string) {
	t.Helper()
	old := serveEnviron
	serveEnviron = func() []string { return environ }
	t.Cleanup(func() { serveEnviron = old })
}

// TestServeEnv sets keys through ICEBREAKER_* variables, and checks that
// flags win over them.
func TestServeEnv(t *testing.T) {
	setServeEnv(t,
		"ICEBREAKER_LISTEN=127.0.0.1:0",
		"ICEBREAKER_TURN_REALM=env.example",
		"ICEBREAKER_TURN_USERS=bob:pw1,carol:pw2",
		"ICEBREAKER_TURN_RELAY_PORTS=51000-51099",
		"ICEBREAKER_TURN_RELM=typo",
		"ICEBREAKER_LOG_FORMAT=json",
	)
	r := startServe(t, "--relay-ports", "52000-52099")
	m := r.waitFor(t, regexp.MustCompile(`(?m)^TURN: realm "([^"]*)", relay \S+ ports (\S+)`))
	if m[1] != "env.example" || m[2] != "52000-52099" {
		t.Errorf("TURN line %q: want realm env.example from the environment, ports 52000-52099 from the flag", m[0])
	}
	c := dialTURN(t, r.endpoint(t, "udp"), "carol", "pw2")
	if relayed := c.allocate(); relayed.Port() < 52000 || relayed.Port() > 52099 {
		t.Errorf("relayed port %d, want one in the flag's 52000-52099", relayed.Port())
	}
	r.stop(t)
	errs := r.errb.String()
	if !strings.HasPrefix(errs, "{") || !strings.Contains(errs, "ICEBREAKER_TURN_RELM is not a configuration variable and is ignored (did you mean ICEBREAKER_TURN_REALM?)") {
		t.Errorf("want JSON logs with a warning about ICEBREAKER_TURN_RELM:\n%s", errs)
	}
}

func TestServeTURNErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, text)
		return p
	}
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string // stderr after "icebreaker serve: "
	}{
		// Flags.
		{"empty realm", nil, []string{"--realm", ""}, 2, "usage error: --realm: is empty"},
		{"user without password", nil, []string{"--user", "alice"}, 2, `usage error: --user: "alice" is not NAME:PASSWORD`},
		{"user empty password", nil, []string{"--user", "a:b", "--user", "c:"}, 2, "usage error: --user: turn.users[1].password: is empty"},
		{"duplicate user", nil, []string{"--user", "a:b", "--user", "a:c"}, 2, `usage error: --user: turn.users[1].username: "a" is also turn.users[0]`},
		{"empty REST secret", nil, []string{"--rest-secret", ""}, 2, "usage error: --rest-secret: is empty"},
		{"relay IP", nil, []string{"--relay-ip", "relay.example"}, 2, `usage error: --relay-ip: "relay.example" is not an IP address`},
		{"external IP", nil, []string{"--external-ip", "203.0.113.5/"}, 2, `usage error: --external-ip: "203.0.113.5/": the private part "" is not an IP address`},
		{"relay ports", nil, []string{"--relay-ports", "6000-5000"}, 2, `usage error: --relay-ports: "6000-5000" is not a range of ports`},
		{"allow peer", nil, []string{"--allow-peer", "10.0.0.1/8"}, 2, `usage error: --allow-peer: "10.0.0.1/8" has host bits set`},
		{"deny peer", nil, []string{"--deny-peer", "nowhere"}, 2, `usage error: --deny-peer: "nowhere" is not a CIDR prefix`},
		{"listen", nil, []string{"--listen", "127.0.0.1:99999"}, 2, `usage error: --listen: "127.0.0.1:99999" is not an IP address or IP:PORT`},
		{"tls port", nil, []string{"--tls-port", "-1"}, 2, "usage error: --tls-port: -1 is not a port number"},
		{"alt port", nil, []string{"--alt-port", "70000"}, 2, "usage error: --alt-port: 70000 is not a port number (0-65535)"},
		// File.
		{"file realm", nil, []string{"--config", file("realm.yaml", "turn:\n  realm: \"\"\n")}, 1, dir + "/realm.yaml:2: turn.realm: is empty"},
		{"file quota", nil, []string{"--config", file("quota.yaml", "turn:\n  quotas:\n    bandwidth_per_user: 10 Mb\n")}, 1,
			dir + `/quota.yaml:3: turn.quotas.bandwidth_per_user: "10 Mb" is not a bandwidth`},
		{"file unknown", nil, []string{"--config", file("unknown.yaml", "turn:\n  policy:\n    allow: []\n")}, 1,
			dir + "/unknown.yaml:3: turn.policy.allow: unknown key"},
		{"file lifetime", nil, []string{"--config", file("life.yaml", "turn:\n  lifetime:\n    max: 1m\n")}, 1,
			dir + "/life.yaml:3: turn.lifetime.max: 1m0s is shorter than turn.lifetime.default 10m0s"},
		{"file test page token", nil, []string{"--config", file("page.yaml", "rendezvous:\n  test_page:\n    enabled: true\n    token: short\n")}, 1,
			dir + "/page.yaml:4: rendezvous.test_page.token: is 5 characters long; use at least 16"},
		{"file test page without REST", nil, []string{"--config", file("page2.yaml", "rendezvous:\n  test_page:\n    enabled: true\n    token: 0123456789abcdef\n")}, 1,
			dir + "/page2.yaml:3: rendezvous.test_page.enabled: the page mints TURN REST credentials"},
		// Environment.
		{"env type", []string{"ICEBREAKER_TURN_QUOTAS_TOTAL_ALLOCATIONS=many"}, nil, 1,
			`ICEBREAKER_TURN_QUOTAS_TOTAL_ALLOCATIONS: turn.quotas.total_allocations: "many" is not an integer`},
		{"env value", []string{"ICEBREAKER_TURN_NONCE_SECRET=short"}, nil, 1, "ICEBREAKER_TURN_NONCE_SECRET: turn.nonce_secret: is 5 bytes"},
		{"env list", []string{"ICEBREAKER_TURN_REST_SECRETS=a,,b"}, nil, 1, "ICEBREAKER_TURN_REST_SECRETS: turn.rest_secrets[1]: is empty"},
		{"flag fixes env", []string{"ICEBREAKER_LOG_LEVEL=loud"}, []string{"--log-level", "verbose"}, 2, `usage error: --log-level: "verbose" is not a level`},
		// Startup.
		{"relay IP not on this host", nil, []string{"--listen", "127.0.0.1", "--port", "0", "--relay-ip", "198.51.100.77"}, 1,
			"turn.relay_ip: cannot bind a relay socket to 198.51.100.77: bind: cannot assign requested address"},
		{"external without relay family", nil, []string{"--listen", "127.0.0.1", "--port", "0", "--external-ip", "2001:db8::5"}, 1,
			"turn.external_ip: 2001:db8::5 has no relay address of its family to map; set turn.relay_ip"},
		{"store is not a database", nil, []string{"--listen", "127.0.0.1", "--port", "0", "--user-db", file("garbage.db", "not sqlite")}, 1,
			"user store (turn.user_db): "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setServeEnv(t, tt.env...)
			code, _, stderr := runServeOnce(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if want := "icebreaker serve: " + tt.want; !strings.HasPrefix(stderr, want) {
				t.Errorf("stderr does not start with %q:\n%s", want, stderr)
			}
			if tt.code == 1 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want a one-line error, got:\n%s", stderr)
			}
		})
	}
}
