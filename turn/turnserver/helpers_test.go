package turnserver

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// The tests of this package start servers one after another, never in
// parallel, so that each can check that it leaves no goroutine behind.

const (
	realm  = "example.org"
	ioWait = 5 * time.Second // bound on every wait for a packet that must come
)

var (
	loop4    = netip.MustParseAddr("127.0.0.1")
	loop6    = netip.MustParseAddr("::1")
	users    = turnauth.StaticUsers{"alice": "secret", "bob": "hunter2"}
	allowAll = mustPolicy(policy.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
)

func mustPolicy(c policy.Config) *policy.Policy {
	p, err := policy.New(c)
	if err != nil {
		panic(err)
	}
	return p
}

// fakeClock is an injectable Config.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a STUN server on loopback UDP and TCP with a TURN server behind
// it and a fake clock.
type env struct {
	t     testing.TB
	stun  *stunserver.Server
	turn  *Server
	clock *fakeClock
	udp   netip.AddrPort
	tcp   netip.AddrPort
}

// newEnv starts the servers. mod may change the TURN Config (which comes
// with the loopback-allowing policy, IPv4 and IPv6 relays on loopback and
// the fake clock). Cleanup closes both servers and checks that no
// goroutine is left.
func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	before := runtime.NumGoroutine()
	auth, err := turnauth.New(turnauth.Config{Realm: realm, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: newFakeClock()}
	cfg := Config{
		Auth:      auth,
		Policy:    allowAll,
		RelayIPv4: loop4,
		RelayIPv6: loop6,
		Clock:     e.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	e.turn, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.stun, err = stunserver.Listen(stunserver.Config{
		UDP:        netip.AddrPortFrom(loop4, 0),
		TCP:        netip.AddrPortFrom(loop4, 0),
		UDPSockets: 1,
		Handler:    e.turn,
	})
	if err != nil {
		e.turn.Close()
		t.Fatal(err)
	}
	for _, ep := range e.stun.Addrs() {
		switch ep.Network {
		case "udp":
			e.udp = ep.Addr
		case "tcp":
			e.tcp = ep.Addr
		}
	}
	served := make(chan error, 1)
	go func() { served <- e.stun.Serve(context.Background()) }()
	t.Cleanup(func() {
		e.stun.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		e.turn.Close()
		e.turn.Close() // idempotent
		checkGoroutines(t, before)
	})
	return e
}

// restSecret signs the REST credentials of restEnv.
const restSecret = "s3cret"

// restEnv is newEnv with an Authenticator that takes TURN REST
// credentials signed with restSecret only.
func restEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	return newEnv(t, func(c *Config) {
		auth, err := turnauth.New(turnauth.Config{Realm: realm, RESTSecrets: []string{restSecret}})
		if err != nil {
			t.Fatal(err)
		}
		c.Auth = auth
		if mod != nil {
			mod(c)
		}
	})
}

// checkGoroutines waits, boundedly, for the goroutine count to fall back
// to before.
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond) // polling a count, not synchronising
	}
}

// attrFn appends one attribute to a request being built.
type attrFn func(b []byte, id stun.TransactionID) []byte

func transport(proto uint8) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendRequestedTransport(b, proto) }
}

func lifetime(d time.Duration) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendLifetime(b, d) }
}

func peerAttr(p netip.AddrPort) attrFn {
	return func(b []byte, id stun.TransactionID) []byte {
		return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, p, id)
	}
}

func channelAttr(n uint16) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendChannelNumber(b, n) }
}

func raw(t stun.AttrType, v []byte) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return stun.AppendAttr(b, t, v) }
}

func family(f turn.Family) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendRequestedAddressFamily(b, f) }
}

func additional(f turn.Family) attrFn {
	return raw(stun.AttrAdditionalAddressFamily, []byte{byte(f), 0, 0, 0})
}

func evenPort(reserve bool) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendEvenPort(b, reserve) }
}

func token(tok [8]byte) attrFn {
	return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendReservationToken(b, tok) }
}

func dataAttr(d []byte) attrFn { return raw(stun.AttrData, d) }

// client is a minimal TURN client over UDP or TCP, built from the stun and
// turn packages, with long-term credentials (MD5).
type client struct {
	t            testing.TB
	c            net.Conn
	stream       bool
	user, pass   string
	realm, nonce string
	rbuf         []byte   // stream bytes read but not yet framed
	pending      [][]byte // messages received that were not the awaited response
}

func dialClient(t testing.TB, network string, addr netip.AddrPort, user string) *client {
	t.Helper()
	c, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, stream: network == "tcp", user: user, pass: users[user]}
}

func (c *client) local() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(c.c.LocalAddr().String())
	return ap
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

// read returns the next datagram, or the next framed message of a stream,
// waiting at most d.
func (c *client) read(d time.Duration) ([]byte, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	if !c.stream {
		buf := make([]byte, 70000)
		n, err := c.c.Read(buf)
		return buf[:n], err
	}
	for {
		if len(c.rbuf) >= 4 {
			var n int
			var err error
			if turn.IsChannelData(c.rbuf, true) {
				n, err = turn.ChannelDataFrameLength(c.rbuf, true)
			} else if len(c.rbuf) >= stun.HeaderSize {
				n, err = stun.MessageLength(c.rbuf)
			}
			if err != nil {
				return nil, err
			}
			if n > 0 && len(c.rbuf) >= n {
				msg := append([]byte(nil), c.rbuf[:n]...)
				c.rbuf = c.rbuf[n:]
				return msg, nil
			}
		}
		buf := make([]byte, 70000)
		k, err := c.c.Read(buf)
		c.rbuf = append(c.rbuf, buf[:k]...)
		if err != nil {
			return nil, err
		}
	}
}

// build makes a request (or indication) of type typ; with auth it carries
// the client's credentials.
func (c *client) build(typ stun.Type, id stun.TransactionID, auth bool, attrs ...attrFn) []byte {
	b := stun.AppendHeader(nil, typ, id)
	for _, a := range attrs {
		b = a(b, id)
	}
	if auth && c.nonce != "" {
		b = stun.AppendAttrString(b, stun.AttrUsername, c.user)
		b = stun.AppendAttrString(b, stun.AttrRealm, c.realm)
		b = stun.AppendAttrString(b, stun.AttrNonce, c.nonce)
		key, err := stun.LongTermKey(stun.PasswordMD5, c.user, c.realm, c.pass)
		if err != nil {
			c.t.Fatal(err)
		}
		b = stun.AppendMessageIntegrity(b, key)
	}
	return stun.AppendFingerprint(b)
}

// roundTrip sends b and returns the response with transaction ID id;
// other messages received meanwhile are kept in pending.
func (c *client) roundTrip(b []byte, id stun.TransactionID) *stun.Message {
	c.t.Helper()
	c.write(b)
	deadline := time.Now().Add(ioWait)
	for {
		pkt, err := c.read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for the response: %v", err)
		}
		var m stun.Message
		if stun.Is(pkt) && m.Parse(pkt) == nil && m.TransactionID == id && m.Type.Class >= stun.ClassSuccess {
			return &m
		}
		c.pending = append(c.pending, pkt)
	}
}

// do sends an authenticated request of method and returns the response,
// answering a 401 or 438 challenge first when needed.
func (c *client) do(method stun.Method, attrs ...attrFn) *stun.Message {
	c.t.Helper()
	for range 3 {
		id := stun.NewTransactionID()
		m := c.roundTrip(c.build(stun.Type{Method: method, Class: stun.ClassRequest}, id, true, attrs...), id)
		if m.Type.Class == stun.ClassError {
			// Retry after the first challenge, or a stale nonce; a 401
			// to a request with credentials is final.
			code, _, _ := m.ErrorCode()
			if code == stun.CodeStaleNonce || code == stun.CodeUnauthorized && c.nonce == "" {
				nonce, err1 := m.Nonce()
				rlm, err2 := m.Realm()
				if err1 == nil && err2 == nil {
					c.nonce, c.realm = nonce, rlm
					continue
				}
			}
		}
		return m
	}
	c.t.Fatal("challenged three times")
	return nil
}

// challenge sends an unauthenticated request and learns the nonce and
// realm of the 401.
func (c *client) challenge() {
	c.t.Helper()
	id := stun.NewTransactionID()
	m := c.roundTrip(c.build(stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, id, false, transport(turn.ProtoUDP)), id)
	checkCode(c.t, m, stun.CodeUnauthorized)
	nonce, err1 := m.Nonce()
	rlm, err2 := m.Realm()
	if err1 != nil || err2 != nil {
		c.t.Fatalf("401 without NONCE or REALM: %v, %v", err1, err2)
	}
	c.nonce, c.realm = nonce, rlm
}

// checkCode fails unless m is an error response with code.
func checkCode(t testing.TB, m *stun.Message, code int) {
	t.Helper()
	got, reason, err := m.ErrorCode()
	if m.Type.Class != stun.ClassError || err != nil || got != code {
		t.Fatalf("got %v code %d %q (%v), want error %d", m.Type, got, reason, err, code)
	}
}

// checkOK fails unless m is a success response with a valid
// MESSAGE-INTEGRITY under the client's key.
func (c *client) checkOK(m *stun.Message) {
	c.t.Helper()
	if m.Type.Class != stun.ClassSuccess {
		code, reason, _ := m.ErrorCode()
		c.t.Fatalf("%v: error %d %s", m.Type, code, reason)
	}
	key, _ := stun.LongTermKey(stun.PasswordMD5, c.user, c.realm, c.pass)
	if err := m.CheckIntegrity(key); err != nil {
		c.t.Fatalf("%v: %v", m.Type, err)
	}
	if err := m.CheckFingerprint(); err != nil {
		c.t.Fatalf("%v: %v", m.Type, err)
	}
}

// allocate creates a UDP allocation and returns the relayed address.
func (c *client) allocate(attrs ...attrFn) netip.AddrPort {
	c.t.Helper()
	m := c.do(stun.MethodAllocate, append([]attrFn{transport(turn.ProtoUDP)}, attrs...)...)
	c.checkOK(m)
	relayed, err := m.XORAddress(stun.AttrXORRelayedAddress)
	if err != nil {
		c.t.Fatal(err)
	}
	return relayed
}

func (c *client) permit(peers ...netip.AddrPort) {
	c.t.Helper()
	var attrs []attrFn
	for _, p := range peers {
		attrs = append(attrs, peerAttr(p))
	}
	c.checkOK(c.do(stun.MethodCreatePermission, attrs...))
}

func (c *client) bind(ch uint16, peer netip.AddrPort) {
	c.t.Helper()
	c.checkOK(c.do(stun.MethodChannelBind, channelAttr(ch), peerAttr(peer)))
}

func (c *client) send(peer netip.AddrPort, data []byte) {
	c.t.Helper()
	c.write(c.build(stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}, stun.NewTransactionID(), false, peerAttr(peer), dataAttr(data)))
}

func (c *client) sendChannel(ch uint16, data []byte) {
	c.t.Helper()
	c.write(turn.AppendChannelData(nil, ch, data, c.stream))
}

// received is data that came through the relay to the client.
type received struct {
	peer    netip.AddrPort // from a Data indication
	channel uint16         // from ChannelData
	data    []byte
}

// recv returns the next Data indication or ChannelData.
func (c *client) recv() received {
	c.t.Helper()
	var pkt []byte
	if len(c.pending) > 0 {
		pkt, c.pending = c.pending[0], c.pending[1:]
	} else {
		var err error
		if pkt, err = c.read(ioWait); err != nil {
			c.t.Fatalf("waiting for relayed data: %v", err)
		}
	}
	if turn.IsChannelData(pkt, true) {
		ch, data, err := turn.ParseChannelData(pkt)
		if err != nil {
			c.t.Fatal(err)
		}
		want := 4 + len(data)
		if c.stream {
			want = (want + 3) &^ 3
		}
		if len(pkt) != want {
			c.t.Fatalf("ChannelData of %d bytes for %d data bytes (stream %v)", len(pkt), len(data), c.stream)
		}
		return received{channel: ch, data: data}
	}
	var m stun.Message
	if err := m.Parse(pkt); err != nil {
		c.t.Fatal(err)
	}
	if m.Type != dataIndicationType {
		c.t.Fatalf("got %v, want a Data indication", m.Type)
	}
	peer, err := m.XORAddress(stun.AttrXORPeerAddress)
	if err != nil {
		c.t.Fatal(err)
	}
	d, _ := m.Get(stun.AttrData)
	return received{peer: peer, data: d}
}

// expectNothing checks that no packet arrives within a short wait. It is
// used only after a later packet proved the path works, so it asserts an
// absence, not a timing.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	if len(c.pending) > 0 {
		c.t.Fatalf("unexpected packet %x", c.pending[0])
	}
	if pkt, err := c.read(d); err == nil {
		c.t.Fatalf("unexpected packet %x", pkt)
	} else if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		c.t.Fatalf("read: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// peer is a UDP socket on loopback standing for a TURN peer.
type peer struct {
	t testing.TB
	c *net.UDPConn
}

func newPeer(t testing.TB, ip netip.Addr) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, c: c}
}

func (p *peer) addr() netip.AddrPort {
	ap := p.c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (p *peer) sendTo(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.c.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) recv() ([]byte, netip.AddrPort) {
	p.t.Helper()
	buf := make([]byte, 70000)
	p.c.SetReadDeadline(time.Now().Add(ioWait))
	n, from, err := p.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("peer: %v", err)
	}
	return buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

func policyAllowLoopback() policy.Config {
	return policy.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// recvMessage returns the next STUN message of type typ, from pending or
// the connection, skipping nothing else: anything else fails the test.
func (c *client) recvMessage(typ stun.Type) *stun.Message {
	c.t.Helper()
	var pkt []byte
	if len(c.pending) > 0 {
		pkt, c.pending = c.pending[0], c.pending[1:]
	} else {
		var err error
		if pkt, err = c.read(ioWait); err != nil {
			c.t.Fatalf("waiting for %v: %v", typ, err)
		}
	}
	var m stun.Message
	if err := m.Parse(pkt); err != nil || m.Type != typ {
		c.t.Fatalf("got %v (%v), want %v", m.Type, err, typ)
	}
	return &m
}

// newSlot returns a buffer laid out as a relay poller's slot (headroom,
// the largest datagram, padding) and a random source, for calling the
// relay paths directly.
func newSlot() ([]byte, *mrand.ChaCha8) {
	return make([]byte, headroom+turn.MaxChannelDataLength+4), mrand.NewChaCha8([32]byte{1})
}
