package turnserver

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// TCP allocations of RFC 6062 (https://www.rfc-editor.org/rfc/rfc6062):
// a TCP relayed address that listens for peers (Section 5.3), Connect
// towards a peer (Section 5.2), ConnectionAttempt indications and
// ConnectionBind on a separate client data connection (Section 5.4),
// after which the two connections are spliced byte for byte.

// Timers of RFC 6062: Section 5.2 (a Connect gives up after at least 30 s)
// and Section 5.3 (a peer connection waits 30 s for its ConnectionBind).
const (
	connectTimeout     = 30 * time.Second
	connectionBindWait = 30 * time.Second
)

// tcpRelay is the relayed transport address of a TCP allocation: a
// listening socket, which the allocation's accept goroutine serves.
type tcpRelay struct {
	ln            *net.TCPListener
	family        turn.Family
	local, public netip.AddrPort
}

// Peer connection states.
const (
	pcConnecting uint8 = iota // Connect is dialling the peer
	pcPending                 // connected, waiting for ConnectionBind
	pcBinding                 // ConnectionBind answered, data connection being handed over
	pcBound                   // spliced to the client data connection
	pcClosed
)

// peerConn is one peer data connection of a TCP allocation and its
// CONNECTION-ID (RFC 6062, Section 2). All fields are guarded by
// Server.mu.
type peerConn struct {
	id      uint32
	a       *allocation
	peer    netip.AddrPort
	state   uint8
	conn    net.Conn // the peer connection; nil while connecting
	client  net.Conn // the client data connection, once bound
	expires int64    // pending or binding: when ConnectionBind is too late
	cancel  context.CancelFunc
	fds     int64 // descriptors it holds in the budget
}

// closeLocked ends the connection and forgets it. s.mu must be held.
func (pc *peerConn) closeLocked(s *Server) {
	if pc.state == pcClosed {
		return
	}
	if pc.state == pcConnecting {
		pc.a.connecting--
		pc.a.user.connecting--
	}
	pc.a.tcpConns--
	s.fds.release(pc.fds)
	pc.state = pcClosed
	delete(s.peerConns, pc.id)
	if pc.cancel != nil {
		pc.cancel()
	}
	for _, c := range []net.Conn{pc.conn, pc.client} {
		if c != nil {
			c.SetDeadline(time.Now()) // a TLS close_notify must not block
			c.Close()
		}
	}
}

// allocateTCP creates a TCP allocation. RFC 6062, Section 5.1.
func (s *Server) allocateTCP(out []byte, r *request) []byte {
	m := r.m
	if r.key.transport == transportUDP {
		return s.fail(out, r, stun.CodeBadRequest, "TCP allocations need a TCP or TLS connection")
	}
	if m.Has(stun.AttrDontFragment) || m.Has(stun.AttrEvenPort) || m.Has(stun.AttrReservationToken) || m.Has(stun.AttrAdditionalAddressFamily) {
		return s.fail(out, r, stun.CodeBadRequest, "Attribute not allowed in a TCP allocation")
	}
	family := turn.FamilyIPv4
	family, failed := s.requestedFamily(out, r, family)
	if failed != nil {
		return failed
	}
	d, present, ok := requestedLifetime(m)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed LIFETIME")
	}
	lifetime := s.cfg.lifetime(d, present)
	u, code, why := s.admit(quotaKey(r.auth))
	if code != 0 {
		return s.refuse(out, r, why, code)
	}
	ln, err := s.openTCPRelay(family)
	if err != nil {
		s.unadmit(u)
		if errors.Is(err, errNoDescriptors) {
			return s.refuse(out, r, refuseDescriptors, stun.CodeInsufficientCapacity)
		}
		return s.refuse(out, r, refusePorts, stun.CodeInsufficientCapacity)
	}
	local := addrPortOf(ln.Addr())
	tr := &tcpRelay{ln: ln, family: family, local: local, public: local}
	if pub := s.publicIP[familyIndex(family)]; pub.IsValid() {
		tr.public = netip.AddrPortFrom(pub, local.Port())
	}
	a := &allocation{
		s:        s,
		key:      r.key,
		conn:     r.req.Conn,
		stream:   true,
		user:     u,
		username: r.auth.Username,
		bucket:   newBucket(s.bandwidthPerAllocation()),
		txID:     m.TransactionID,
		created:  r.now,
		tcp:      tr,
	}
	a.peers.Store(emptyPeers)
	a.expires.Store(r.now + int64(lifetime))
	if existing := s.commit(a, [2]*relay{}); existing != nil {
		s.closeTCPListener(tr)
		s.unadmit(u)
		if existing == a {
			return s.fail(out, r, stun.CodeServerError, "")
		}
		return s.fail(out, r, stun.CodeAllocationMismatch, "")
	}
	s.logCreated(a, lifetime)
	return s.allocateSuccess(out, r, a)
}

// openTCPRelay listens on a free port of the range. The socket has
// SO_REUSEPORT so that Connect can dial peers from the same address.
func (s *Server) openTCPRelay(f turn.Family) (*net.TCPListener, error) {
	pool := s.ports[familyIndex(f)]
	ip := s.relayIP[familyIndex(f)]
	network := "tcp6"
	if ip.Is4() {
		network = "tcp4"
	}
	if !s.fds.take(1) {
		return nil, errNoDescriptors
	}
	var ln net.Listener
	err := pool.each(func(port uint16) bool {
		var lc net.ListenConfig
		if udpio.ReusePortSupported {
			lc.Control = udpio.ControlReusePort
		}
		var e error
		ln, e = lc.Listen(context.Background(), network, netip.AddrPortFrom(ip, port).String())
		return e == nil
	})
	if err != nil {
		s.fds.release(1)
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func (s *Server) closeTCPListener(tr *tcpRelay) {
	tr.ln.Close()
	s.ports[familyIndex(tr.family)].release(tr.local.Port())
	s.fds.release(1)
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// newConnIDLocked picks an unused, non-zero CONNECTION-ID. s.mu must be
// held.
func (s *Server) newConnIDLocked() uint32 {
	for {
		if id := randUint32(); id != 0 && s.peerConns[id] == nil {
			return id
		}
	}
}

// acceptPeers accepts peer connections on a TCP relay until its listener
// closes. RFC 6062, Section 5.3: a peer without a permission is
// disconnected at once; otherwise the client gets a ConnectionAttempt.
func (s *Server) acceptPeers(a *allocation) {
	defer s.wg.Done()
	ln := a.tcp.ln
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.readErrors.Add(1)
			select { // a persistent error (EMFILE) must not spin
			case <-s.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		peer := addrPortOf(c.RemoteAddr())
		if !a.peers.Load().permitted(peer.Addr()) {
			a.toClient.droppedNoPermission.Add(1)
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed || a.deleted() {
			s.mu.Unlock()
			c.Close()
			continue
		}
		if why, ok := s.admitPeerConnLocked(a, false); !ok {
			s.mu.Unlock()
			c.Close()
			s.abuse.refused[why].Add(1)
			s.abuseLog.Log(a.key.client.Addr(), why.String(), "turn peer connection refused",
				slog.String("user", a.username), slog.String("client", a.key.client.String()), slog.String("peer", peer.String()))
			continue
		}
		pc := &peerConn{id: s.newConnIDLocked(), a: a, peer: peer, state: pcPending, conn: c,
			expires: s.mono() + int64(connectionBindWait), fds: 1}
		s.peerConns[pc.id] = pc
		s.mu.Unlock()
		// RFC 6062, Section 5.3: ConnectionAttempt with XOR-PEER-ADDRESS
		// and CONNECTION-ID.
		id := stun.NewTransactionID()
		b := stun.AppendHeader(nil, stun.Type{Method: stun.MethodConnectionAttempt, Class: stun.ClassIndication}, id)
		b = stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
		b = turn.AppendConnectionID(b, pc.id)
		b = stun.AppendFingerprint(s.appendSoftware(b))
		if err := a.conn.WriteTo(b, a.key.client); err != nil {
			a.toClient.sendErrors.Add(1)
		}
	}
}

// admitPeerConnLocked counts a new peer connection of a, a Connect when
// dialling, against the RFC 6062 quotas and the descriptor budget, or
// says which refuses it. s.mu must be held.
func (s *Server) admitPeerConnLocked(a *allocation, dialling bool) (refusal, bool) {
	q := *s.quota()
	switch {
	case dialling && q.ConnectsPerAllocation > 0 && a.connecting >= q.ConnectsPerAllocation:
		return refuseConnects, false
	case dialling && q.ConnectsPerUser > 0 && a.user.connecting >= q.ConnectsPerUser:
		return refuseUserConnects, false
	case q.TCPConnectionsPerAllocation > 0 && a.tcpConns >= q.TCPConnectionsPerAllocation:
		return refuseTCPConnections, false
	case !s.fds.take(1):
		return refuseDescriptors, false
	}
	a.tcpConns++
	if dialling {
		a.connecting++
		a.user.connecting++
	}
	return 0, true
}

// serveTCPRelay answers Connect and ConnectionBind.
func (s *Server) serveTCPRelay(out []byte, r *request) []byte {
	if r.m.Type.Method == stun.MethodConnect {
		return s.connect(out, r)
	}
	return s.connectionBind(out, r)
}

// connect answers a Connect request: the response is sent later, when the
// connection to the peer succeeds or fails. RFC 6062, Section 5.2.
func (s *Server) connect(out []byte, r *request) []byte {
	a, fail := s.lookup(out, r)
	if a == nil {
		return fail
	}
	if a.tcp == nil {
		return s.fail(out, r, stun.CodeBadRequest, "Connect needs a TCP allocation")
	}
	pv, ok := r.m.Get(stun.AttrXORPeerAddress)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "XOR-PEER-ADDRESS missing")
	}
	peer, err := parsePeer(pv, r.m.TransactionID)
	if err != nil {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed XOR-PEER-ADDRESS")
	}
	if familyOf(peer.Addr()) != a.tcp.family {
		return s.fail(out, r, stun.CodePeerAddressFamilyMismatch, "")
	}
	if code := s.judge(peer); code != 0 {
		return s.refuse(out, r, refusePolicy, code)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	for _, pc := range s.peerConns {
		if pc.a == a && pc.peer == peer {
			s.mu.Unlock()
			return s.fail(out, r, stun.CodeConnectionAlreadyExists, "")
		}
	}
	if why, ok := s.admitPeerConnLocked(a, true); !ok {
		s.mu.Unlock()
		code := stun.CodeInsufficientCapacity
		if why == refuseUserConnects {
			code = stun.CodeAllocationQuotaReached
		}
		return s.refuse(out, r, why, code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	pc := &peerConn{id: s.newConnIDLocked(), a: a, peer: peer, state: pcConnecting, cancel: cancel, fds: 1}
	s.peerConns[pc.id] = pc
	s.wg.Add(1)
	s.mu.Unlock()
	go s.dial(ctx, pc, r.auth, r.m.TransactionID)
	return nil
}

// dial connects a Connect's peer from the relayed address and answers the
// Connect through the control connection: success with CONNECTION-ID, or
// 447. RFC 6062, Section 5.2.
func (s *Server) dial(ctx context.Context, pc *peerConn, auth turnauth.Result, id stun.TransactionID) {
	defer s.wg.Done()
	a := pc.a
	local := a.tcp.local
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Control: udpio.ControlReusePort}
	if !udpio.ReusePortSupported {
		// Dial from another port of the relay IP address: a deviation
		// from RFC 6062, Section 5.2.
		d.LocalAddr, d.Control = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), 0)), nil
	}
	c, err := d.DialContext(ctx, "tcp", pc.peer.String())
	s.mu.Lock()
	ok := err == nil && pc.state == pcConnecting
	if ok {
		a.connecting--
		a.user.connecting--
		pc.conn, pc.state, pc.cancel = c, pcPending, nil
		pc.expires = s.mono() + int64(connectionBindWait)
	} else {
		pc.closeLocked(s)
	}
	s.mu.Unlock()
	if !ok && c != nil {
		c.Close()
	}
	typ := stun.Type{Method: stun.MethodConnect, Class: stun.ClassSuccess}
	if !ok {
		typ.Class = stun.ClassError
	}
	b := stun.AppendHeader(nil, typ, id)
	if ok {
		b = turn.AppendConnectionID(b, pc.id)
	} else {
		b = stun.AppendErrorCode(b, stun.CodeConnectionTimeoutOrFailure, "")
	}
	b = auth.AppendSignature(s.appendSoftware(b))
	if err := a.conn.WriteTo(b, a.key.client); err != nil {
		a.toClient.sendErrors.Add(1)
	}
}

// connectionBind answers a ConnectionBind on a new client connection and
// turns that connection into the client data connection of a pending peer
// connection. RFC 6062, Section 5.4.
func (s *Server) connectionBind(out []byte, r *request) []byte {
	if r.key.transport == transportUDP {
		return s.fail(out, r, stun.CodeBadRequest, "ConnectionBind needs a TCP or TLS connection")
	}
	v, ok := r.m.Get(stun.AttrConnectionID)
	if !ok {
		return s.fail(out, r, stun.CodeBadRequest, "CONNECTION-ID missing")
	}
	cid, err := turn.ParseConnectionID(v)
	if err != nil {
		return s.fail(out, r, stun.CodeBadRequest, "Malformed CONNECTION-ID")
	}
	s.mu.Lock()
	pc := s.peerConns[cid]
	switch {
	case pc == nil || pc.state != pcPending:
		s.mu.Unlock()
		return s.fail(out, r, stun.CodeBadRequest, "Unknown CONNECTION-ID")
	case pc.a.username != r.auth.Username:
		s.mu.Unlock()
		return s.fail(out, r, stun.CodeWrongCredentials, "")
	}
	pc.state = pcBinding
	s.mu.Unlock()
	if err := r.req.Conn.Detach(func(c net.Conn, rest []byte) { s.splice(pc, c, rest) }); err != nil {
		s.mu.Lock()
		if pc.state == pcBinding {
			pc.state = pcPending
		}
		s.mu.Unlock()
		return s.fail(out, r, stun.CodeServerError, "")
	}
	return s.finish(successHeader(out, r), r)
}

// splice joins a peer connection and its client data connection: bytes
// go through unchanged both ways (RFC 6062, Section 5.5) until either side
// closes, which closes both. It runs on the STUN server's goroutine and
// starts the two copying goroutines.
func (s *Server) splice(pc *peerConn, client net.Conn, rest []byte) {
	s.mu.Lock()
	if s.closed || pc.state != pcBinding {
		s.mu.Unlock()
		client.Close()
		return
	}
	pc.client, pc.state = client, pcBound
	s.fds.force(1) // the client data connection is the server's now
	pc.fds++
	s.wg.Add(2)
	s.mu.Unlock()
	a := pc.a
	go s.copyData(pc, pc.conn, client, rest, &a.toPeer)
	go s.copyData(pc, client, pc.conn, nil, &a.toClient)
}

// copyData copies src to dst (after first) until either fails, then
// closes the pair. On Linux, TCP to TCP uses splice(2): no copy through
// user space.
func (s *Server) copyData(pc *peerConn, dst, src net.Conn, first []byte, f *flow) {
	defer s.wg.Done()
	var n int64
	if len(first) > 0 {
		k, err := dst.Write(first)
		n += int64(k)
		if err != nil {
			src = nil
		}
	}
	if src != nil {
		k, _ := io.Copy(dst, src)
		n += k
	}
	f.bytes.Add(uint64(n))
	s.mu.Lock()
	pc.closeLocked(s)
	s.mu.Unlock()
}

// closeTCPConnections closes a TCP allocation's listener and its peer
// connections. Called once, when the allocation is deleted.
func (a *allocation) closeTCPConnections() {
	if a.tcp == nil {
		return
	}
	s := a.s
	s.closeTCPListener(a.tcp)
	s.mu.Lock()
	for _, pc := range s.peerConns {
		if pc.a == a {
			pc.closeLocked(s)
		}
	}
	s.mu.Unlock()
}

// closeTCPRelays closes every peer connection, when the server closes.
func (s *Server) closeTCPRelays() {
	s.mu.Lock()
	for _, pc := range s.peerConns {
		pc.closeLocked(s)
	}
	s.mu.Unlock()
}

// sweepTCPRelays closes peer connections whose ConnectionBind did not come
// in time. RFC 6062, Section 5.3.
func (s *Server) sweepTCPRelays(now int64) {
	s.mu.Lock()
	for _, pc := range s.peerConns {
		if (pc.state == pcPending || pc.state == pcBinding) && pc.expires <= now {
			pc.closeLocked(s)
		}
	}
	s.mu.Unlock()
}

// deleted reports whether the allocation was deleted.
func (a *allocation) deleted() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gone
}
