package interop

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// TestPionTCPAllocation runs pion/turn v5's RFC 6062 client
// (https://www.rfc-editor.org/rfc/rfc6062) against `icebreaker serve`: a
// TCP allocation, then a connection to a TCP peer on 127.0.0.1 through
// Connect and ConnectionBind (Section 5.2), and a connection from that
// peer to the relayed address, announced by a ConnectionAttempt
// indication and taken with ConnectionBind (Section 5.3). Bytes go both
// ways on each. Loopback peers are allowed in this test only.
func TestPionTCPAllocation(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServe(t, ctx, "--allow-peer", "127.0.0.0/8")

	var d net.Dialer
	ctrl, err := d.DialContext(ctx, "tcp4", srv.tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: srv.tcp.String(),
		TURNServerAddr: srv.tcp.String(),
		Conn:           turn.NewSTUNConn(ctrl),
		Username:       turnUser,
		Password:       turnPass,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	alloc, err := client.AllocateTCP()
	if err != nil {
		t.Fatalf("AllocateTCP: %v\nserver:\n%s", err, srv.proc.Output())
	}
	defer alloc.Close()
	relayed, err := netip.ParseAddrPort(alloc.Addr().String())
	if err != nil || relayed.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("relayed address %v (%v), want one on 127.0.0.1", alloc.Addr(), err)
	}

	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerAddr := ln.Addr().(*net.TCPAddr)

	t.Run("connect", func(t *testing.T) {
		// The peer accepts one connection and echoes it.
		type accepted struct {
			remote netip.AddrPort
			err    error
		}
		acc := make(chan accepted, 1)
		go func() {
			c, err := ln.AcceptTCP()
			if err != nil {
				acc <- accepted{err: err}
				return
			}
			defer c.Close()
			acc <- accepted{remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
			c.SetDeadline(time.Now().Add(testTimeout))
			io.Copy(c, c)
		}()
		conn, err := alloc.DialTCP("tcp4", nil, peerAddr)
		if err != nil {
			ln.Close() // ends the goroutine
			<-acc
			t.Fatalf("DialTCP(%v) through the relay: %v", peerAddr, err)
		}
		defer conn.Close() // also when the exchange fails: the peer's io.Copy ends
		a := <-acc
		if a.err != nil {
			t.Fatal(a.err)
		}
		// RFC 6062, Section 5.2: the server connects from the relayed
		// transport address.
		if a.remote != relayed {
			t.Errorf("peer was connected from %v, want the relayed address %v", a.remote, relayed)
		}
		exchange(t, conn, conn, []byte("through the relay and back"))
	})

	t.Run("accept", func(t *testing.T) {
		if err := client.CreatePermission(peerAddr); err != nil {
			t.Fatalf("CreatePermission(%v): %v", peerAddr, err)
		}
		peer, err := d.DialContext(ctx, "tcp4", relayed.String())
		if err != nil {
			t.Fatalf("peer dial of the relayed address %v: %v", relayed, err)
		}
		defer peer.Close()
		alloc.SetDeadline(time.Now().Add(5 * time.Second))
		conn, err := alloc.AcceptTCP()
		if err != nil {
			t.Fatalf("AcceptTCP: %v\nserver:\n%s", err, srv.proc.Output())
		}
		defer conn.Close()
		if got := conn.RemoteAddr().String(); got != peer.LocalAddr().String() {
			t.Errorf("accepted connection from %s, want the peer %v", got, peer.LocalAddr())
		}
		exchange(t, peer, conn, []byte("from the peer"))
		exchange(t, conn, peer, []byte("to the peer"))
	})
	srv.checkAlive(t)
}

// exchange writes msg on w and reads it back whole from r, within a few
// seconds.
func exchange(t *testing.T, w io.Writer, r net.Conn, msg []byte) {
	t.Helper()
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read: %v (got %q)", err, got)
	}
	if string(got) != string(msg) {
		t.Fatalf("read %q, want %q", got, msg)
	}
}
