package turnclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TCPRelay is a TCP allocation of RFC 6062
// (https://www.rfc-editor.org/rfc/rfc6062): a relayed TCP address on the
// server. Dial connects it to a peer (Connect, Section 4.3), Accept takes
// the connections peers open to it (ConnectionAttempt, Section 4.5); each
// is a net.Conn over its own data connection to the server, bound with
// ConnectionBind (Section 4.4), on which the bytes go unframed.
//
// A TCPRelay is safe for concurrent use. It owns the control connection
// to the server and two goroutines (the reader and the refresher, which
// refreshes the allocation and every permission created with
// CreatePermission); Close stops both and waits for them. The net.Conns
// that Dial and Accept return belong to the caller, who closes them; Close
// closes those still open too. The zero value is not usable: use
// AllocateTCP.
type TCPRelay struct {
	r *Relay

	life context.Context // cancelled by Close: ends Dial and Accept calls
	kill context.CancelFunc

	mu     sync.Mutex // guards conns and closed
	conns  map[*tcpConn]struct{}
	closed bool
}

// attempt is a ConnectionAttempt indication waiting for Accept.
type attempt struct {
	id   uint32
	peer netip.AddrPort
}

// AllocateTCP creates a TCP allocation (RFC 6062, Section 4.1): Allocate
// with REQUESTED-TRANSPORT TCP over a TCP or TLS connection to the server,
// which stays open as the control connection. cfg is that of Allocate,
// with these differences: Transport must be TCP or TLS (UDP, the zero
// value, is taken as TCP); Family IPv4 or IPv6 (not Dual, which RFC 6062
// does not define); BindAfter and Queue's meaning for datagrams do not
// apply (Queue bounds the ConnectionAttempts waiting for Accept).
//
// ctx bounds the allocation only. Errors are those of Allocate; a server
// without RFC 6062 answers 442 (Unsupported Transport Protocol), a
// *stun.Error.
func AllocateTCP(ctx context.Context, cfg Config) (*TCPRelay, error) {
	if cfg.Transport == UDP {
		cfg.Transport = TCP
	}
	if cfg.Family == Dual {
		return nil, errors.New("turnclient: a TCP allocation has one address family (RFC 6062 has no dual allocation)")
	}
	r, err := allocateProto(ctx, cfg, turn.ProtoTCP)
	if err != nil {
		return nil, err
	}
	life, kill := context.WithCancel(context.Background())
	return &TCPRelay{r: r, life: life, kill: kill, conns: make(map[*tcpConn]struct{})}, nil
}

// connectionAttempt queues a ConnectionAttempt indication for Accept, or
// drops it when the queue is full (the server then closes the peer's
// connection after 30 s). RFC 6062, Section 4.5.
func (r *Relay) connectionAttempt(msg *stun.Message) {
	peer, err := msg.XORAddress(stun.AttrXORPeerAddress)
	v, ok := msg.Get(stun.AttrConnectionID)
	if err != nil || !ok {
		r.st.malformed.Add(1)
		return
	}
	id, err := turn.ParseConnectionID(v)
	if err != nil {
		r.st.malformed.Add(1)
		return
	}
	r.st.attempts.Add(1)
	select {
	case r.attempts <- attempt{id: id, peer: netx.Unmap(peer)}:
	default:
		r.st.drop.Add(1)
	}
}

// Addr returns the relayed transport address (a *net.TCPAddr), where
// peers connect.
func (t *TCPRelay) Addr() net.Addr { return net.TCPAddrFromAddrPort(t.r.granted.relayed[0]) }

// Relayed returns the relayed transport address.
func (t *TCPRelay) Relayed() netip.AddrPort { return t.r.granted.relayed[0] }

// Mapped returns the server-reflexive address of the control connection
// (XOR-MAPPED-ADDRESS), or the zero value.
func (t *TCPRelay) Mapped() netip.AddrPort { return t.r.Mapped() }

// Server returns the server's address in use.
func (t *TCPRelay) Server() netip.AddrPort { return t.r.Server() }

// Lifetime returns the lifetime granted by the Allocate response.
func (t *TCPRelay) Lifetime() time.Duration { return t.r.Lifetime() }

// Stats returns the counters of the control connection; Attempts counts
// ConnectionAttempt indications and Dropped those Accept did not take in
// time.
func (t *TCPRelay) Stats() Stats { return t.r.Stats() }

// CreatePermission installs a permission for ip (RFC 8656, Section 9),
// which the server needs before it accepts a connection from a peer at ip
// (RFC 6062, Section 5.3). The TCPRelay refreshes it until Close. A
// refusal (403) wraps ErrForbidden.
func (t *TCPRelay) CreatePermission(ctx context.Context, ip netip.Addr) error {
	return t.r.CreatePermission(ctx, ip)
}

func (t *TCPRelay) opError(op string, peer netip.AddrPort, err error) error {
	return netx.OpError(op, "turn-tcp", t.Addr(), netx.TCPAddr(peer), err)
}

// usable reports why the TCPRelay cannot be used, or nil.
func (t *TCPRelay) usable() error {
	switch {
	case t.r.life.closed():
		return net.ErrClosed
	case t.r.life.lost() != nil:
		return t.r.life.lost()
	}
	return nil
}

// context returns ctx, also cancelled by Close.
func (t *TCPRelay) context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(t.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// Dial connects the relayed address to peer and returns the connection:
// Connect on the control connection (RFC 6062, Section 4.3), then a new
// data connection to the server bound to it with ConnectionBind (Section
// 4.4). Bytes written to the net.Conn reach the peer from the relayed
// address. Its LocalAddr is the relayed address and its RemoteAddr the
// peer. The server needs no permission for this (its peer policy still
// applies). Errors are *net.OpError wrapping ErrForbidden (403),
// ErrConnectFailed (447), ErrConnectionExists (446), another *stun.Error,
// a timeout, ctx's error or net.ErrClosed.
func (t *TCPRelay) Dial(ctx context.Context, peer netip.AddrPort) (net.Conn, error) {
	peer = netx.Unmap(peer)
	if !peer.IsValid() || peer.Port() == 0 || peer.Addr().IsUnspecified() {
		return nil, t.opError("dial", peer, fmt.Errorf("turn: invalid peer address %v", peer))
	}
	if err := t.usable(); err != nil {
		return nil, t.opError("dial", peer, err)
	}
	ctx, cancel := t.context(ctx)
	defer cancel()
	resp, err := t.r.client.Do(ctx, t.r.Server(), stun.MethodConnect, func(b []byte, id stun.TransactionID) []byte {
		return turn.AppendPeerAddress(b, peer, id)
	})
	if err != nil {
		return nil, t.opError("dial", peer, t.closedOr(classify(err)))
	}
	v, ok := resp.Message.Get(stun.AttrConnectionID)
	if !ok {
		return nil, t.opError("dial", peer, fmt.Errorf("turn: Connect response without CONNECTION-ID: %w", stun.ErrAttrNotFound))
	}
	id, err := turn.ParseConnectionID(v)
	if err != nil {
		return nil, t.opError("dial", peer, fmt.Errorf("turn: Connect response: %w", err))
	}
	c, err := t.bind(ctx, id, peer)
	if err != nil {
		return nil, t.opError("dial", peer, t.closedOr(err))
	}
	return c, nil
}

// Accept waits for a peer to connect to the relayed address and returns
// the connection and the peer's address: it takes the next
// ConnectionAttempt indication (RFC 6062, Section 4.5) and binds a new
// data connection to it (Section 4.4). The server only lets in peers with
// a permission: call CreatePermission first. An attempt whose
// ConnectionBind fails (the peer gave up, 30 s passed) returns its error;
// the next call takes the next attempt. Errors are *net.OpError wrapping
// a *stun.Error, a timeout, ctx's error, net.ErrClosed or
// ErrAllocationLost.
func (t *TCPRelay) Accept(ctx context.Context) (net.Conn, netip.AddrPort, error) {
	if err := t.usable(); err != nil {
		return nil, netip.AddrPort{}, t.opError("accept", netip.AddrPort{}, err)
	}
	var a attempt
	select {
	case a = <-t.r.attempts:
	case <-ctx.Done():
		return nil, netip.AddrPort{}, t.opError("accept", netip.AddrPort{}, ctx.Err())
	case <-t.r.life.closing:
		return nil, netip.AddrPort{}, t.opError("accept", netip.AddrPort{}, net.ErrClosed)
	case <-t.r.life.dead:
		return nil, netip.AddrPort{}, t.opError("accept", netip.AddrPort{}, t.r.life.deadErr)
	}
	ctx, cancel := t.context(ctx)
	defer cancel()
	c, err := t.bind(ctx, a.id, a.peer)
	if err != nil {
		return nil, a.peer, t.opError("accept", a.peer, t.closedOr(err))
	}
	return c, a.peer, nil
}

// closedOr returns net.ErrClosed if Close ended the operation, else err.
func (t *TCPRelay) closedOr(err error) error {
	if t.r.life.closed() {
		return fmt.Errorf("%w (%w)", net.ErrClosed, err)
	}
	return err
}

// bind opens a data connection to the server and binds it to the peer
// connection id with ConnectionBind. RFC 6062, Section 4.4. The request
// is a transaction of the control connection's STUN client, written to
// the data connection: so it carries the realm, nonce and key the control
// connection already uses, as the server expects (coturn checks a
// ConnectionBind against the control connection's session and closes a
// data connection whose first request fails). Bytes that follow the
// response in the same read are the peer's first bytes and are kept for
// Read.
func (t *TCPRelay) bind(ctx context.Context, id uint32, peer netip.AddrPort) (net.Conn, error) {
	r := t.r
	server := r.Server()
	c, err := dialStream(ctx, r.cfg, r.host, server)
	if err != nil {
		return nil, err
	}
	defer r.forgetDataConn(c)
	// The transaction runs in a goroutine that this function waits for;
	// this goroutine reads the responses, and stops reading at the
	// success response, after which the stream is the peer's.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.client.Do(tctx, server, stun.MethodConnectionBind, func(b []byte, tid stun.TransactionID) []byte {
			r.routeToDataConn(tid, c)
			return turn.AppendConnectionID(b, id)
		})
		if err != nil {
			c.SetReadDeadline(time.Unix(1, 0)) // unblock the reader below
		}
		done <- err
	}()
	br := bufio.NewReaderSize(c, 4096)
	var (
		buf     []byte
		msg     stun.Message
		readErr error
		refusal error // the last final error response seen, if any
	)
	for {
		frame, err := readFrame(br, buf)
		if err != nil {
			readErr = err
			break
		}
		buf = frame[:0]
		r.client.HandlePacket(frame, server)
		if msg.Parse(frame) != nil || msg.Type.Method != stun.MethodConnectionBind {
			continue
		}
		if msg.Type.Class == stun.ClassSuccess {
			break
		}
		if code, reason, err := msg.ErrorCode(); err == nil {
			refusal = &stun.Error{Code: code, Reason: reason}
		}
	}
	if readErr != nil {
		cancel() // fail the transaction if it still waits
	}
	err = <-done
	if err == nil && readErr != nil {
		err = readErr // cannot happen: the success response ends reading
	}
	if err != nil {
		c.Close()
		if readErr != nil && ctx.Err() == nil && tctx.Err() != nil {
			// The server closed the connection: say why, if it did.
			if refusal != nil {
				err = refusal
			} else {
				err = fmt.Errorf("turn: data connection to %s: %w", server, readErr)
			}
		}
		return nil, classify(err)
	}
	c.SetReadDeadline(time.Time{})
	tc := &tcpConn{
		Conn:   c,
		t:      t,
		local:  t.Addr(),
		remote: net.TCPAddrFromAddrPort(peer),
	}
	if n := br.Buffered(); n > 0 {
		tc.prefix, _ = br.Peek(n)
	}
	if !t.track(tc) {
		c.Close()
		return nil, net.ErrClosed
	}
	return tc, nil
}

// dataConns routes the ConnectionBind requests of a TCP allocation to
// their data connections (RFC 6062, Section 4.4): the STUN client writes
// each request to the connection its transaction ID is mapped to.
type dataConns struct {
	mu    sync.Mutex
	conns map[stun.TransactionID]net.Conn // guarded by mu
}

// routeToDataConn makes the control connection's STUN client write the
// request with transaction ID id to the data connection c.
func (r *Relay) routeToDataConn(id stun.TransactionID, c net.Conn) {
	r.binds.mu.Lock()
	defer r.binds.mu.Unlock()
	if r.binds.conns == nil {
		r.binds.conns = make(map[stun.TransactionID]net.Conn)
	}
	r.binds.conns[id] = c
}

// forgetDataConn removes the routes to c.
func (r *Relay) forgetDataConn(c net.Conn) {
	r.binds.mu.Lock()
	defer r.binds.mu.Unlock()
	for id, dc := range r.binds.conns {
		if dc == c {
			delete(r.binds.conns, id)
		}
	}
}

// dataConnFor returns the data connection the request b goes to, or nil
// for the control connection.
func (r *Relay) dataConnFor(b []byte) net.Conn {
	if len(b) < stun.HeaderSize {
		return nil
	}
	r.binds.mu.Lock()
	defer r.binds.mu.Unlock()
	return r.binds.conns[stun.TransactionID(b[8:20])]
}

// track registers an open connection, or reports false after Close.
func (t *TCPRelay) track(c *tcpConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *TCPRelay) untrack(c *tcpConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// Close ends Dial and Accept calls in progress, deletes the allocation
// (Refresh with LIFETIME 0, best effort), closes the control connection,
// waits for the TCPRelay's goroutines, and closes the connections Dial
// and Accept returned that are still open. Calling it again does nothing
// and returns the first call's result.
func (t *TCPRelay) Close() error {
	t.kill()
	err := t.r.Close()
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = map[*tcpConn]struct{}{}
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

// tcpConn is a peer connection of a TCPRelay: the data connection to the
// server, which carries the peer's bytes unchanged (RFC 6062, Section
// 5.5), with the relayed address as LocalAddr and the peer as RemoteAddr.
// Safe for concurrent use, like the connection it wraps.
type tcpConn struct {
	net.Conn
	t             *TCPRelay
	local, remote net.Addr

	mu     sync.Mutex
	prefix []byte // the peer's bytes read with the ConnectionBind response
}

func (c *tcpConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// LocalAddr returns the relayed address (a *net.TCPAddr).
func (c *tcpConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address (a *net.TCPAddr).
func (c *tcpConn) RemoteAddr() net.Addr { return c.remote }

// Close closes the data connection; the server then closes the peer's.
func (c *tcpConn) Close() error {
	c.t.untrack(c)
	return c.Conn.Close()
}
