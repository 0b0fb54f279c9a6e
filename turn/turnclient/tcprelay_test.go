package turnclient

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// tcpEchoPeer is a TCP listener on loopback that echoes every connection.
func tcpEchoPeer(t *testing.T, ip string) netip.AddrPort {
	t.Helper()
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// exchange writes msg on from and reads it on to.
func exchange(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(to, buf); err != nil || string(buf) != msg {
		t.Fatalf("read %q (%v), want %q", buf, err, msg)
	}
}

// testTCPRelay runs an RFC 6062 allocation through its paces: Dial a TCP
// echo peer, Accept a peer connecting to the relayed address, and Close.
// The caller checks for goroutine leaks.
func testTCPRelay(t *testing.T, cfg Config, ip string) {
	t.Helper()
	echo := tcpEchoPeer(t, ip)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tr, err := AllocateTCP(ctx, cfg)
	if err != nil {
		t.Fatalf("AllocateTCP: %v", err)
	}
	defer tr.Close()
	relayed := tr.Relayed()
	if relayed.Addr().String() != ip || relayed.Port() == 0 {
		t.Errorf("relayed address %v, want one on %s", relayed, ip)
	}

	// Outgoing: Connect and ConnectionBind.
	c, err := tr.Dial(ctx, echo)
	if err != nil {
		t.Fatalf("Dial %v: %v", echo, err)
	}
	if got := c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != echo {
		t.Errorf("RemoteAddr %v, want %v", got, echo)
	}
	if got := c.LocalAddr().(*net.TCPAddr).AddrPort(); got != relayed {
		t.Errorf("LocalAddr %v, want %v", got, relayed)
	}
	for _, msg := range []string{"hello through the relay", "and again"} {
		exchange(t, c, c, msg)
	}
	if _, err := tr.Dial(ctx, echo); !errors.Is(err, ErrConnectionExists) {
		t.Logf("second Dial to the same peer: %v (a server may allow it)", err)
	}

	// Incoming: a peer with a permission connects to the relayed address.
	if err := tr.CreatePermission(ctx, relayed.Addr()); err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	in, err := net.Dial("tcp", relayed.String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// Bytes sent before the bind arrive after it.
	if _, err := in.Write([]byte("early ")); err != nil {
		t.Fatal(err)
	}
	ac, peer, err := tr.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v (stats %+v)", err, tr.Stats())
	}
	if want := in.LocalAddr().(*net.TCPAddr).AddrPort(); netx.Unmap(peer) != netx.Unmap(want) {
		t.Errorf("Accept: peer %v, want %v", peer, want)
	}
	if _, err := in.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("early late"))
	ac.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(ac, buf); err != nil || string(buf) != "early late" {
		t.Fatalf("accepted connection read %q (%v), want %q", buf, err, "early late")
	}
	exchange(t, ac, in, "back to the peer")
	if st := tr.Stats(); st.Attempts != 1 || st.Dropped != 0 {
		t.Errorf("stats %+v: want 1 attempt, none dropped", st)
	}
	t.Logf("%s: relayed %v, stats %+v", tr.r.cfg.Transport, relayed, tr.Stats())

	// Close deletes the allocation and closes the connections.
	if err := tr.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, conn := range []net.Conn{c, ac, in} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		// Closed here, or by the server: FIN (coturn may reset).
		if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connection not closed after Close: %v", err)
		}
	}
	if _, err := tr.Dial(ctx, echo); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v, want net.ErrClosed", err)
	}
	if _, _, err := tr.Accept(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestCoturnTCPAllocation(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	s := startCoturn(t, coturnOpts{tls: true, args: []string{"--lt-cred-mech", "--user=u:p"}})
	t.Run("TCP", func(t *testing.T) {
		testTCPRelay(t, Config{Server: s.addr.String(), Transport: TCP, Username: "u", Password: "p"}, "127.0.0.1")
	})
	t.Run("TLS", func(t *testing.T) {
		testTCPRelay(t, Config{Server: s.tlsAddr.String(), Transport: TLS, TLSConfig: insecureTLS(), Username: "u", Password: "p"}, "127.0.0.1")
	})
}

// insecureTLS trusts any certificate: coturn serves a self-signed one.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

// TestTCPRelayCloseEndsAccept: Close returns a blocked Accept with
// net.ErrClosed and waits for the TCPRelay's goroutines.
func TestTCPRelayCloseEndsAccept(t *testing.T) {
	checkNoLeak(t)
	s := startOurs(t, ourOpts{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tr, err := AllocateTCP(ctx, Config{Server: s.tcp.String(), Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := tr.Accept(ctx)
		errc <- err
	}()
	if err := tr.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept ended by Close: %v, want net.ErrClosed", err)
	}
	if _, err := AllocateTCP(ctx, Config{Server: s.tcp.String(), Family: Dual, Username: "u", Password: "p"}); err == nil {
		t.Error("AllocateTCP with Family Dual succeeded")
	}
}
