package turnserver

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// tcpPeer is a TCP listener on loopback standing for a peer.
func tcpPeer(t testing.TB) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func tcpAddr(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// dataConn opens a client data connection and binds it to id, using
// control's credentials. RFC 6062, Section 5.4.
func dataConn(t testing.TB, e *env, control *client, id uint32) net.Conn {
	t.Helper()
	dc := dialClient(t, "tcp", e.tcp, control.user)
	dc.nonce, dc.realm = control.nonce, control.realm
	m := dc.do(stun.MethodConnectionBind, func(b []byte, _ stun.TransactionID) []byte { return turn.AppendConnectionID(b, id) })
	dc.checkOK(m)
	// Data may follow the response in the same read.
	return &prefixConn{Conn: dc.c, prefix: dc.rbuf}
}

// prefixConn reads prefix before reading the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func connectionID(t testing.TB, m *stun.Message) uint32 {
	t.Helper()
	v, ok := m.Get(stun.AttrConnectionID)
	if !ok {
		t.Fatalf("%v without CONNECTION-ID", m.Type)
	}
	id, err := turn.ParseConnectionID(v)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// echo checks that bytes written on one side come out on the other.
func echo(t testing.TB, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	to.SetReadDeadline(time.Now().Add(ioWait))
	if _, err := io.ReadFull(to, buf); err != nil || string(buf) != msg {
		t.Fatalf("read %q (%v), want %q", buf, err, msg)
	}
}

// TestTCPAllocation runs RFC 6062 end to end on loopback: a TCP
// allocation, Connect to a peer, ConnectionBind, data both ways; then a
// peer connecting in, ConnectionAttempt, and ConnectionBind; finally
// deleting the allocation closes the data connections.
func TestTCPAllocation(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "tcp", e.tcp, "alice")
	m := c.do(stun.MethodAllocate, transport(turn.ProtoTCP))
	c.checkOK(m)
	relayed, err := m.XORAddress(stun.AttrXORRelayedAddress)
	if err != nil {
		t.Fatal(err)
	}

	// Outgoing: Connect.
	ln := tcpPeer(t)
	m = c.do(stun.MethodConnect, peerAttr(tcpAddr(ln.Addr())))
	c.checkOK(m)
	id := connectionID(t, m)
	ln.SetDeadline(time.Now().Add(ioWait))
	pconn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer pconn.Close()
	if got := tcpAddr(pconn.RemoteAddr()); got != relayed {
		t.Errorf("peer sees the connection from %v, want the relayed address %v", got, relayed)
	}
	checkCode(t, c.do(stun.MethodConnect, peerAttr(tcpAddr(ln.Addr()))), stun.CodeConnectionAlreadyExists)
	dc := dataConn(t, e, c, id)
	echo(t, dc, pconn, "client to peer")
	echo(t, pconn, dc, "peer to client")
	// The CONNECTION-ID is spent.
	other := dialClient(t, "tcp", e.tcp, "alice")
	other.nonce, other.realm = c.nonce, c.realm
	checkCode(t, other.do(stun.MethodConnectionBind, func(b []byte, _ stun.TransactionID) []byte { return turn.AppendConnectionID(b, id) }), stun.CodeBadRequest)

	// Incoming: a peer with a permission connects to the relayed address.
	c.permit(netip.AddrPortFrom(loop4, 1))
	in, err := net.Dial("tcp", relayed.String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r := c.recvMessage(stun.Type{Method: stun.MethodConnectionAttempt, Class: stun.ClassIndication})
	if p, err := r.XORAddress(stun.AttrXORPeerAddress); err != nil || p != tcpAddr(in.LocalAddr()) {
		t.Errorf("ConnectionAttempt XOR-PEER-ADDRESS %v (%v), want %v", p, err, in.LocalAddr())
	}
	// Bytes the peer sends before the bind are delivered after it.
	if _, err := in.Write([]byte("early ")); err != nil {
		t.Fatal(err)
	}
	dc2 := dataConn(t, e, c, connectionID(t, r))
	if _, err := in.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("early late"))
	dc2.SetReadDeadline(time.Now().Add(ioWait))
	if _, err := io.ReadFull(dc2, got); err != nil || string(got) != "early late" {
		t.Fatalf("data connection read %q (%v)", got, err)
	}
	echo(t, dc2, in, "back")

	// Deleting the allocation closes every data connection.
	c.checkOK(c.do(stun.MethodRefresh, lifetime(0)))
	for _, conn := range []net.Conn{dc, dc2, pconn, in} {
		conn.SetReadDeadline(time.Now().Add(ioWait))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("connection not closed: %v", err)
		}
	}
	if n := e.turn.ports[0].held(); n != 0 {
		t.Errorf("%d ports held", n)
	}
}

// TestTCPAllocationErrors walks the error paths of RFC 6062, Sections
// 5.1-5.4, the permission check on incoming connections and the 30 s
// ConnectionBind window.
func TestTCPAllocationErrors(t *testing.T) {
	pol := mustPolicy(policyAllowLoopback())
	e := newEnv(t, func(c *Config) { c.Policy = pol })
	connID := func(id uint32) attrFn {
		return func(b []byte, _ stun.TransactionID) []byte { return turn.AppendConnectionID(b, id) }
	}
	udp := dialClient(t, "udp", e.udp, "alice")
	checkCode(t, udp.do(stun.MethodAllocate, transport(turn.ProtoTCP)), stun.CodeBadRequest)
	checkCode(t, udp.do(stun.MethodConnectionBind, connID(1)), stun.CodeBadRequest)
	checkCode(t, dialClient(t, "tcp", e.tcp, "alice").do(stun.MethodAllocate, transport(turn.ProtoTCP), evenPort(false)), stun.CodeBadRequest)

	udpAlloc := dialClient(t, "tcp", e.tcp, "alice")
	udpAlloc.allocate()
	checkCode(t, udpAlloc.do(stun.MethodConnect, peerAttr(tcpAddr(tcpPeer(t).Addr()))), stun.CodeBadRequest)

	c := dialClient(t, "tcp", e.tcp, "alice")
	m := c.do(stun.MethodAllocate, transport(turn.ProtoTCP))
	c.checkOK(m)
	relayed, _ := m.XORAddress(stun.AttrXORRelayedAddress)
	checkCode(t, c.do(stun.MethodConnect), stun.CodeBadRequest)
	checkCode(t, c.do(stun.MethodConnect, peerAttr(netip.MustParseAddrPort("10.0.0.1:80"))), stun.CodeForbidden)
	checkCode(t, c.do(stun.MethodConnect, peerAttr(netip.MustParseAddrPort("[::1]:80"))), stun.CodePeerAddressFamilyMismatch)
	closed := tcpPeer(t)
	closedAddr := tcpAddr(closed.Addr())
	closed.Close()
	checkCode(t, c.do(stun.MethodConnect, peerAttr(closedAddr)), stun.CodeConnectionTimeoutOrFailure)
	checkCode(t, c.do(stun.MethodChannelBind, channelAttr(0x4000), peerAttr(closedAddr)), stun.CodeBadRequest)
	checkCode(t, c.do(stun.MethodConnectionBind, connID(12345)), stun.CodeBadRequest)

	// No permission: the peer is disconnected at once.
	in, err := net.Dial("tcp", relayed.String())
	if err != nil {
		t.Fatal(err)
	}
	in.SetReadDeadline(time.Now().Add(ioWait))
	if _, err := io.ReadAll(in); err != nil {
		t.Errorf("peer without permission: %v", err)
	}
	in.Close()

	// With a permission, a ConnectionAttempt; without a ConnectionBind
	// within 30 s the peer is disconnected and the ID is void.
	c.permit(netip.AddrPortFrom(loop4, 1))
	in, err = net.Dial("tcp", relayed.String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	id := connectionID(t, c.recvMessage(stun.Type{Method: stun.MethodConnectionAttempt, Class: stun.ClassIndication}))
	bob := dialClient(t, "tcp", e.tcp, "bob")
	checkCode(t, bob.do(stun.MethodConnectionBind, connID(id)), stun.CodeWrongCredentials)
	e.clock.Advance(connectionBindWait + time.Second)
	e.turn.sweep()
	in.SetReadDeadline(time.Now().Add(ioWait))
	if _, err := io.ReadAll(in); err != nil {
		t.Errorf("unbound peer connection not closed: %v", err)
	}
	checkCode(t, c.do(stun.MethodConnectionBind, connID(id)), stun.CodeBadRequest)
}
