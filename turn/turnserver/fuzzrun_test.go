package turnserver

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// The harness of FuzzServe: its policy, client connection, keys and the
// run of one input with the checks on every answer.

// fuzzPolicy is allowAll narrowed to the peers a fuzzed relay may send
// to: 127.77.0.0/16 on any port and [::1]:9 (discard), where no test
// listens, so that fuzzed datagrams disturb nobody. It is stateless: the
// harness judges peers with it too.
type fuzzPolicy struct{}

func fuzzPeerOK(p netip.AddrPort) bool {
	a := p.Addr()
	return a.Is4() && fuzzPeers4.Contains(a) || a == loop6 && p.Port() == 9
}

func (fuzzPolicy) Allowed(p netip.AddrPort) bool { return fuzzPeerOK(p) && allowAll.Allowed(p) }

func (fuzzPolicy) Check(p netip.AddrPort) error {
	if !fuzzPeerOK(p) {
		return errFuzzDeny
	}
	return allowAll.Check(p)
}

// fuzzConn is a client socket (UDP) or connection (TCP, TLS) that keeps
// what the server writes to it.
type fuzzConn struct {
	network       string
	local, remote netip.AddrPort

	mu       sync.Mutex
	writes   [][]byte
	keepOpen bool
}

func (c *fuzzConn) Network() string            { return c.network }
func (c *fuzzConn) LocalAddr() netip.AddrPort  { return c.local }
func (c *fuzzConn) RemoteAddr() netip.AddrPort { return c.remote }

func (c *fuzzConn) WriteTo(b []byte, _ netip.AddrPort) error {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(b))
	c.mu.Unlock()
	return nil
}

func (c *fuzzConn) KeepOpen(on bool) {
	c.mu.Lock()
	c.keepOpen = on
	c.mu.Unlock()
}

func (c *fuzzConn) Detach(func(net.Conn, []byte)) error {
	if c.network == "udp" {
		return stunserver.ErrNotStream
	}
	return errNoDetach
}

// fuzzKey is a key a request may be signed with.
type fuzzKey struct {
	name string
	key  []byte
}

// fuzzKeys are the long-term keys of every user, MD5 and SHA-256.
func fuzzKeys(tb testing.TB) []fuzzKey {
	var keys []fuzzKey
	for user, pass := range users {
		for _, alg := range []stun.PasswordAlgorithm{stun.PasswordMD5, stun.PasswordSHA256} {
			k, err := stun.LongTermKey(alg, user, realm, pass)
			if err != nil {
				tb.Fatal(err)
			}
			keys = append(keys, fuzzKey{user + "/" + alg.String(), k})
		}
	}
	return keys
}

// fuzzRun is the server, clients and model of one input.
type fuzzRun struct {
	t       *testing.T
	opts    byte
	keys    []fuzzKey
	before  int // goroutines before the server
	srv     *Server
	clock   *fakeClock
	network string
	conns   [2]*fuzzConn

	nonce  string
	algs   []byte // PASSWORD-ALGORITHMS of the challenge
	token  []byte // RESERVATION-TOKEN of the last Allocate success
	lastID stun.TransactionID
	out    []byte // reused for every response, as the STUN server does

	// The model: what successful responses granted, and the Connects
	// answered later.
	perms    map[netip.Addr]bool
	chans    map[uint16]bool
	connects map[stun.TransactionID]int
}

func newFuzzRun(t *testing.T, opts byte, keys []fuzzKey) *fuzzRun {
	r := &fuzzRun{
		t: t, opts: opts, keys: keys,
		before:   runtime.NumGoroutine(),
		clock:    newFakeClock(),
		network:  [4]string{"udp", "tcp", "tls", "udp"}[opts>>foNetShift&3],
		out:      make([]byte, 0, 2048),
		perms:    make(map[netip.Addr]bool),
		chans:    make(map[uint16]bool),
		connects: make(map[stun.TransactionID]int),
	}
	auth, err := turnauth.New(turnauth.Config{Realm: realm, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	r.srv, err = New(Config{
		Auth:      auth,
		Policy:    fuzzPolicy{},
		RelayIPv4: loop4,
		RelayIPv6: loop6,
		Clock:     r.clock.Now,
		// Quotas on the paths: a second allocation of a user is 486, and
		// relayed bytes pass through the token buckets.
		Quotas: Quotas{AllocationsPerUser: 1, TotalAllocations: 2, BandwidthPerAllocation: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	udp := &fuzzConn{network: "udp", local: fuzzLocal}
	for i := range r.conns {
		if r.network == "udp" {
			r.conns[i] = udp // one listening socket for every client
		} else {
			r.conns[i] = &fuzzConn{network: r.network, local: fuzzLocal, remote: fuzzClients[i]}
		}
	}
	return r
}

func (r *fuzzRun) run(m1, m2, m3, rawPkt, frame []byte) {
	t := r.t
	defer r.srv.Close()

	// The challenge: 401 with REALM and NONCE, unsigned.
	ch := r.serve(r.build(fzAllocate, 0, 0, fuzzAttrs(transport(turn.ProtoUDP))), 0)
	if ch == nil {
		t.Fatal("unauthenticated Allocate: no answer")
	}
	if code, _, _ := ch.ErrorCode(); code != stun.CodeUnauthorized ||
		!ch.Has(stun.AttrNonce) || !ch.Has(stun.AttrRealm) || ch.Has(stun.AttrMessageIntegrity) {
		t.Fatalf("unauthenticated Allocate: %v code %d, want 401 with NONCE and REALM, unsigned", ch.Type, code)
	}
	r.nonce, _ = ch.Nonce()
	r.algs, _ = ch.Get(stun.AttrPasswordAlgorithms)
	r.algs = bytes.Clone(r.algs)

	if r.opts&foPrealloc != 0 {
		m := r.serve(r.build(fzAllocate|fzSigned, 0, 1, fuzzAttrs(transport(turn.ProtoUDP))), 0)
		if m == nil || m.Type.Class != stun.ClassSuccess {
			t.Fatalf("valid Allocate: %v", m)
		}
	}
	for i, spec := range [][]byte{m1, m2, m3} {
		if len(spec) >= 2 {
			attrs := spec[2:]
			attrs = attrs[:min(len(attrs), fuzzMaxAttrs)&^3]
			client := 0
			if spec[0]&fzClientB != 0 {
				client = 1
			}
			r.serve(r.build(spec[0], spec[1], 2+i, attrs), client)
		}
		if i == 1 {
			if d := [4]time.Duration{0, 301, 601, 3601}[r.opts>>foAdvShift&3] * time.Second; d > 0 {
				r.clock.Advance(d)
				r.srv.sweep()
			}
		}
	}
	// A raw packet, where the STUN server would pass it on.
	var m stun.Message
	if m.Parse(rawPkt) == nil && !m.Classic && m.Type.Method != stun.MethodBinding &&
		(!m.Has(stun.AttrFingerprint) || m.CheckFingerprint() == nil) {
		r.serve(rawPkt, 0)
	}
	if len(frame) > 0 {
		client := 0
		if r.opts&foChanB != 0 {
			client = 1
		}
		r.channelData(frame, client)
	}
	r.finish()
}

// fuzzAttrs encodes attributes for a message whose ID does not matter.
func fuzzAttrs(attrs ...attrFn) []byte {
	return fuzzSpec(0, 0, 0, attrs...)[2:]
}

// build makes the message of a spec in slot: the method and flags of
// ctl0 and ctl1, the attribute bytes as given, then the credentials and
// FINGERPRINT the flags ask for.
func (r *fuzzRun) build(ctl0, ctl1 byte, slot int, attrs []byte) []byte {
	typ := stun.Type{Method: fuzzMethods[ctl0&fzMethodMask], Class: stun.ClassRequest}
	if (typ.Method == stun.MethodSend) != (ctl1&fzIndication != 0) {
		typ.Class = stun.ClassIndication
	}
	id := fuzzTxID(slot)
	if ctl0&fzReuseID != 0 && slot > 0 {
		id = r.lastID
	}
	r.lastID = id
	b := stun.AppendHeader(make([]byte, 0, stun.HeaderSize+len(attrs)+256), typ, id)
	b = append(b, attrs...)
	b[2], b[3] = byte(len(attrs)>>8), byte(len(attrs))
	if ctl1&fzToken != 0 && r.token != nil {
		b = stun.AppendAttr(b, stun.AttrReservationToken, r.token)
	}
	if ctl0&fzSigned != 0 {
		user := "alice"
		if ctl0&fzBob != 0 {
			user = "bob"
		}
		pass := users[user]
		if ctl1&fzWrongPassword != 0 {
			pass = "wrong"
		}
		if ctl1&fzUserhash != 0 {
			h, _ := stun.Userhash(user, realm)
			b = stun.AppendAttr(b, stun.AttrUserhash, h[:])
		} else {
			b = stun.AppendAttrString(b, stun.AttrUsername, user)
		}
		b = stun.AppendAttrString(b, stun.AttrRealm, realm)
		b = stun.AppendAttrString(b, stun.AttrNonce, r.nonce)
		alg := stun.PasswordMD5
		if ctl0&fzSHA256 != 0 {
			alg = stun.PasswordSHA256
			b = stun.AppendAttr(b, stun.AttrPasswordAlgorithms, r.algs)
			b = stun.AppendPasswordAlgorithm(b, stun.PasswordAlgorithmParams{Algorithm: alg})
		}
		key, err := stun.LongTermKey(alg, user, realm, pass)
		if err != nil {
			r.t.Fatal(err)
		}
		if alg == stun.PasswordSHA256 {
			b = stun.AppendMessageIntegritySHA256(b, key)
		} else {
			b = stun.AppendMessageIntegrity(b, key)
		}
	}
	if ctl1&fzNoFingerprint == 0 {
		b = stun.AppendFingerprint(b)
	}
	return b
}

// relayed counts the packets the server relayed, or tried to, towards
// peers.
func (r *fuzzRun) relayed() uint64 {
	st := r.srv.Stats()
	return st.ToPeerPackets + st.SendErrors
}

// serve hands pkt from client to ServeSTUN, if it parses, and checks the
// answer. It returns the parsed response, or nil.
func (r *fuzzRun) serve(pkt []byte, client int) *stun.Message {
	t := r.t
	var m stun.Message
	if m.Parse(pkt) != nil {
		return nil // the STUN server drops it
	}
	req := &stunserver.Request{Msg: &m, From: fuzzClients[client], Local: fuzzLocal, Network: r.network, Conn: r.conns[client]}
	before := r.relayed()
	out := r.srv.ServeSTUN(r.out[:0], req)
	if n := r.relayed() - before; n > 0 {
		r.checkSend(&m, n)
	}
	if m.Type.Class != stun.ClassRequest {
		if len(out) != 0 {
			t.Fatalf("%v answered with %x", m.Type, out)
		}
		return nil
	}
	if len(out) == 0 {
		if m.Type.Method == stun.MethodConnect {
			r.connects[m.TransactionID]++ // answered when the peer connects or not
			return nil
		}
		t.Fatalf("%v got no answer; request %x", m.Type, pkt)
	}
	return r.checkResponse(&m, bytes.Clone(out), client)
}

// checkSend checks that n packets relayed while a message was served came
// from a Send indication to a permitted peer that the policy allows.
func (r *fuzzRun) checkSend(m *stun.Message, n uint64) {
	t := r.t
	if m.Type != sendIndicate || n > 1 {
		t.Fatalf("%d packets relayed for a %v", n, m.Type)
	}
	peer, ok := firstPeer(m)
	switch {
	case !ok:
		t.Fatalf("Send relayed without a valid XOR-PEER-ADDRESS: %x", m.Raw)
	case !(fuzzPolicy{}).Allowed(peer):
		t.Fatalf("Send relayed to %v, which the policy denies", peer)
	case !r.perms[peer.Addr()]:
		t.Fatalf("Send relayed to %v, which has no permission", peer)
	}
}

// firstPeer returns the first XOR-PEER-ADDRESS of m, unmapped.
func firstPeer(m *stun.Message) (netip.AddrPort, bool) {
	v, ok := m.Get(stun.AttrXORPeerAddress)
	if !ok {
		return netip.AddrPort{}, false
	}
	p, err := stun.ParseXORAddress(v, m.TransactionID)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(p.Addr().Unmap(), p.Port()), true
}

// turnRequest reports whether the server implements requests of method.
func turnRequest(method stun.Method) bool {
	switch method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind,
		stun.MethodConnect, stun.MethodConnectionBind:
		return true
	}
	return false
}

// requestKey returns the user key under which req's integrity attribute
// verifies (MESSAGE-INTEGRITY-SHA256 when present, as the server checks),
// if any.
func (r *fuzzRun) requestKey(req *stun.Message) (key []byte, sha256, ok bool) {
	sha256 = req.Has(stun.AttrMessageIntegritySHA256)
	for _, k := range r.keys {
		if sha256 && req.CheckIntegritySHA256(k.key) == nil || !sha256 && req.CheckIntegrity(k.key) == nil {
			return k.key, sha256, true
		}
	}
	return nil, false, false
}

// checkResponse checks b, the answer to req from client, and records what
// a success granted.
func (r *fuzzRun) checkResponse(req *stun.Message, b []byte, client int) *stun.Message {
	t := r.t
	var resp stun.Message
	if !stun.Is(b) {
		t.Fatalf("answer to %v is not a STUN message: %x", req.Type, b)
	}
	if err := resp.Parse(b); err != nil {
		t.Fatalf("answer to %v does not parse: %v; %x", req.Type, err, b)
	}
	if resp.TransactionID != req.TransactionID || resp.Type.Method != req.Type.Method ||
		resp.Type.Class != stun.ClassSuccess && resp.Type.Class != stun.ClassError {
		t.Fatalf("answer %v %x to %v %x", resp.Type, resp.TransactionID, req.Type, req.TransactionID)
	}
	// Challenges to requests without FINGERPRINT carry none (they are
	// what a spoofed request reflects); everything else does.
	if req.Has(stun.AttrFingerprint) || resp.Has(stun.AttrFingerprint) || resp.Type.Class == stun.ClassSuccess {
		if err := resp.CheckFingerprint(); err != nil {
			t.Fatalf("answer %v: FINGERPRINT: %v", resp.Type, err)
		}
	}
	if resp.Type.Class == stun.ClassError {
		code, reason, err := resp.ErrorCode()
		if err != nil {
			t.Fatalf("answer %v: ERROR-CODE: %v", resp.Type, err)
		}
		if !turnRequest(req.Type.Method) && code != stun.CodeBadRequest {
			t.Fatalf("unsupported method %v answered %d %s, want 400", req.Type.Method, code, reason)
		}
		if code == stun.CodeUnauthorized || code == stun.CodeStaleNonce {
			nonce, err1 := resp.Nonce()
			rlm, err2 := resp.Realm()
			if err1 != nil || err2 != nil || rlm != realm {
				t.Fatalf("%d without NONCE or REALM: %v, %v", code, err1, err2)
			}
			if code == stun.CodeStaleNonce {
				r.nonce = nonce // as a client would: retry with the new one
			}
		}
		return &resp
	}

	// Success: only for a TURN request whose integrity verifies under a
	// user's key, and signed with that key.
	if !turnRequest(req.Type.Method) {
		t.Fatalf("success to unsupported method %v", req.Type.Method)
	}
	key, sha256, ok := r.requestKey(req)
	if !ok {
		t.Fatalf("success to %v without a valid MESSAGE-INTEGRITY: authentication skipped; request %x", req.Type, req.Raw)
	}
	if sha256 && resp.CheckIntegritySHA256(key) != nil || !sha256 && resp.CheckIntegrity(key) != nil {
		t.Fatalf("success %v not signed with the request's key (SHA-256 %v)", resp.Type, sha256)
	}
	switch req.Type.Method {
	case stun.MethodAllocate:
		mapped, err := resp.XORAddress(stun.AttrXORMappedAddress)
		if err != nil || mapped != fuzzClients[client] {
			t.Fatalf("Allocate success: XOR-MAPPED-ADDRESS %v (%v), want %v", mapped, err, fuzzClients[client])
		}
		if _, err := resp.XORAddress(stun.AttrXORRelayedAddress); err != nil {
			t.Fatalf("Allocate success: XOR-RELAYED-ADDRESS: %v", err)
		}
		if v, ok := resp.Get(stun.AttrReservationToken); ok {
			r.token = bytes.Clone(v)
		}
	case stun.MethodCreatePermission:
		// RFC 8656, Section 10.2: every peer gets a permission, and the
		// policy (judging port 0 as permissionCheckPort) allowed them all.
		for _, a := range req.Attrs {
			if a.Type != stun.AttrXORPeerAddress {
				continue
			}
			p, err := stun.ParseXORAddress(a.Value, req.TransactionID)
			if err != nil {
				t.Fatalf("CreatePermission success with a malformed XOR-PEER-ADDRESS %x", a.Value)
			}
			p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
			if p.Port() == 0 {
				p = netip.AddrPortFrom(p.Addr(), permissionCheckPort)
			}
			if !(fuzzPolicy{}).Allowed(p) {
				t.Fatalf("CreatePermission success for %v, which the policy denies", p)
			}
			r.perms[p.Addr()] = true
		}
	case stun.MethodChannelBind:
		peer, ok := firstPeer(req)
		v, _ := req.Get(stun.AttrChannelNumber)
		num, err := turn.ParseChannelNumber(v)
		if !ok || err != nil || !turn.ValidChannel(num, false) {
			t.Fatalf("ChannelBind success for channel %#x (%v) and peer %v (%v)", num, err, peer, ok)
		}
		if !(fuzzPolicy{}).Allowed(peer) {
			t.Fatalf("ChannelBind success for %v, which the policy denies", peer)
		}
		r.chans[num] = true
		r.perms[peer.Addr()] = true
	}
	return &resp
}

// channelData hands frame from client to ServeOther (or, with
// foBatch, twice to a batch and flushes it) and checks that whatever was
// relayed went through a channel that a ChannelBind bound.
func (r *fuzzRun) channelData(frame []byte, client int) {
	req := &stunserver.Request{From: fuzzClients[client], Local: fuzzLocal, Network: r.network, Conn: r.conns[client]}
	before := r.relayed()
	sent := uint64(1)
	if r.opts&foBatch != 0 {
		b := r.srv.NewOtherBatch()
		b.ServeOther(req, frame)
		b.ServeOther(req, frame)
		b.Flush()
		sent = 2
	} else {
		r.srv.ServeOther(req, frame)
	}
	n := r.relayed() - before
	if n == 0 {
		return
	}
	ch, _, err := turn.ParseChannelData(frame)
	if n > sent || err != nil || !r.chans[ch] {
		r.t.Fatalf("ChannelData %x relayed %d times (%v); bound channels %v", frame, n, err, r.chans)
	}
}

// finish closes the connections and the server and checks that nothing
// is left: allocations, reservations, ports, keep-open marks, unanswered
// Connects, goroutines; and that everything written to clients is
// well-formed.
func (r *fuzzRun) finish() {
	t := r.t
	s := r.srv
	if r.opts&foConnClosed != 0 && r.network != "udp" {
		for _, c := range r.conns {
			s.ConnClosed(c)
		}
		if n := s.Stats().Allocations; n != 0 {
			t.Fatalf("%d allocations left after their connections closed", n)
		}
	}
	s.Close()
	s.Close() // idempotent
	if out := s.ServeSTUN(r.out[:0], &stunserver.Request{
		Msg:  mustParse(t, r.build(fzAllocate|fzSigned, 0, 9, fuzzAttrs(transport(turn.ProtoUDP)))),
		From: fuzzClients[0], Local: fuzzLocal, Network: r.network, Conn: r.conns[0],
	}); len(out) != 0 {
		t.Fatalf("closed server answered %x", out)
	}
	st := s.Stats()
	if st.Allocations != 0 || st.Reservations != 0 {
		t.Fatalf("after Close: %d allocations, %d reservations", st.Allocations, st.Reservations)
	}
	for i, p := range s.ports {
		if n := p.held(); n != 0 {
			t.Fatalf("after Close: %d ports of family %d held", n, i)
		}
	}
	s.mu.Lock()
	pcs := len(s.peerConns)
	s.mu.Unlock()
	if pcs != 0 {
		t.Fatalf("after Close: %d RFC 6062 connections", pcs)
	}
	seen := map[*fuzzConn]bool{}
	for _, c := range r.conns {
		if seen[c] {
			continue
		}
		seen[c] = true
		c.mu.Lock()
		writes, keep := c.writes, c.keepOpen
		c.mu.Unlock()
		if keep {
			t.Fatalf("%s connection left kept open", c.network)
		}
		for _, b := range writes {
			r.checkWrite(b)
		}
	}
	for id, n := range r.connects {
		if n != 0 {
			t.Fatalf("Connect %x: %d answers missing", id, n)
		}
	}
	// Close waited for every goroutine; the last ones may still be on
	// their way out after their wg.Done.
	for i := 0; i < 1000 && runtime.NumGoroutine() > r.before; i++ {
		runtime.Gosched()
	}
	checkGoroutines(t, r.before)
}

// checkWrite checks a message the server sent to a client on its own:
// ChannelData or a Data indication from a peer, a ConnectionAttempt, or
// the late answer to a Connect.
func (r *fuzzRun) checkWrite(b []byte) {
	t := r.t
	if turn.IsChannelData(b, true) {
		if _, _, err := turn.ParseChannelData(b); err != nil {
			t.Fatalf("ChannelData to the client: %v", err)
		}
		return
	}
	var m stun.Message
	if err := m.Parse(b); err != nil {
		t.Fatalf("message to the client: %v; %x", err, b)
	}
	// Data indications carry no FINGERPRINT; responses must.
	if m.Has(stun.AttrFingerprint) || m.Type.Class != stun.ClassIndication {
		if err := m.CheckFingerprint(); err != nil {
			t.Fatalf("%v to the client: %v", m.Type, err)
		}
	}
	switch m.Type.Class {
	case stun.ClassIndication:
		if m.Type.Method != stun.MethodData && m.Type.Method != stun.MethodConnectionAttempt {
			t.Fatalf("%v to the client", m.Type)
		}
	case stun.ClassSuccess, stun.ClassError:
		if m.Type.Method != stun.MethodConnect || r.connects[m.TransactionID] == 0 {
			t.Fatalf("%v %x to the client answers no pending Connect", m.Type, m.TransactionID)
		}
		r.connects[m.TransactionID]--
	default:
		t.Fatalf("%v to the client", m.Type)
	}
}

func mustParse(t testing.TB, b []byte) *stun.Message {
	t.Helper()
	var m stun.Message
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	return &m
}
