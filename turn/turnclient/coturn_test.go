package turnclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// Interop with coturn's turnserver, started by each test on loopback with
// --allow-loopback-peers so that an echo peer on loopback can be reached.

type coturnServer struct {
	addr    netip.AddrPort // UDP and TCP
	tlsAddr netip.AddrPort // when started with TLS
	proc    *testutil.Process
}

type coturnOpts struct {
	ip      string   // listening and relay IP; default 127.0.0.1
	tls     bool     // add a TLS listener with a self-signed certificate
	args    []string // auth and other flags
	tlsCert *x509.Certificate
}

func startCoturn(t *testing.T, o coturnOpts) *coturnServer {
	t.Helper()
	bin := testutil.RequireBinary(t, "turnserver")
	ip := o.ip
	if ip == "" {
		ip = "127.0.0.1"
	}
	var lastErr error
	for range 3 {
		port := testutil.FreePort(t)
		dir := t.TempDir()
		args := []string{"-n", "--no-cli", "--no-dtls",
			"--listening-ip", ip, "--relay-ip", ip, "-p", strconv.Itoa(port),
			"--allow-loopback-peers", "--realm=test",
			"--log-file", "stdout", "--simple-log",
			"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb")}
		s := &coturnServer{addr: netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))}
		if o.tls {
			tlsPort := testutil.FreePort(t)
			cert, key := writeCert(t, dir)
			args = append(args, "--tls-listening-port", strconv.Itoa(tlsPort), "--cert", cert, "--pkey", key)
			s.tlsAddr = netip.AddrPortFrom(s.addr.Addr(), uint16(tlsPort))
		} else {
			args = append(args, "--no-tls")
		}
		args = append(args, o.args...)
		cmd := testutil.Command(t.Context(), bin, args...)
		cmd.Dir = dir
		s.proc = testutil.Start(t, cmd)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		lastErr = s.ready(ctx)
		cancel()
		if lastErr == nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("turnserver output:\n%s", s.proc.Output())
				}
			})
			return s
		}
		s.proc.Kill()
		s.proc.Wait()
	}
	t.Fatalf("coturn did not come up: %v", lastErr)
	return nil
}

// ready waits until coturn answers a Binding request over UDP as coturn
// (coturn binds with SO_REUSEPORT, so another server on the port would not
// make it fail).
func (s *coturnServer) ready(ctx context.Context) error {
	network := "udp4"
	if s.addr.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return err
	}
	c, err := stunclient.New(conn, stunclient.Config{Retransmit: stunclient.Retransmit{RTO: 50 * time.Millisecond, Rc: 2, Rm: 2}})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		res, err := c.Binding(ctx, s.addr)
		if err == nil {
			if sw, _ := res.Response.Message.Software(); !strings.Contains(sw, "Coturn") {
				return fmt.Errorf("%v answered with SOFTWARE %q: not coturn", s.addr, sw)
			}
			break
		}
		if s.proc.Exited() {
			return fmt.Errorf("turnserver exited: %v\n%s", s.proc.Wait(), s.proc.Output())
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%v: %w\n%s", s.addr, err, s.proc.Output())
		}
	}
	if !s.tlsAddr.IsValid() {
		return nil
	}
	for {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", s.tlsAddr.String())
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("TLS port %v: %w", s.tlsAddr, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	return testutil.SelfSignedCert(t).WriteFiles(t, dir)
}

// echoPeer is a UDP socket on loopback that sends every datagram back.
func echoPeer(t *testing.T, ip string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// checkNoLeak fails if goroutines started during the test outlive it.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for range 100 {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
			time.Sleep(10 * time.Millisecond) // bounded wait for exiting goroutines, not synchronisation
		}
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	})
}

// roundTrips sends numbered datagrams to the echo peer through r until
// both the Send-indication and the channel paths have carried data both
// ways, and returns how many round trips it took. The channel is bound in
// the background, so on a busy machine loopback round trips may outrun it:
// the bound is time, not a count.
func roundTrips(t *testing.T, r *Relay, peer netip.AddrPort) int {
	t.Helper()
	buf := make([]byte, 2048)
	to := net.UDPAddrFromAddrPort(peer)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		msg := fmt.Appendf(nil, "ping %d", i)
		if _, err := r.WriteTo(msg, to); err != nil {
			t.Fatalf("WriteTo %v: %v", peer, err)
		}
		r.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, from, err := r.ReadFrom(buf)
			if err != nil {
				t.Fatalf("ReadFrom after %q: %v (stats %+v)", msg, err, r.Stats())
			}
			if got := from.(*net.UDPAddr).AddrPort(); netx.Unmap(got) != peer {
				t.Fatalf("datagram from %v, want %v", got, peer)
			}
			if bytes.Equal(buf[:n], msg) {
				break
			}
			// An echo of an earlier ping (a retransmitted path): read on.
		}
		st := r.Stats()
		if st.SentIndications > 0 && st.RecvIndications > 0 && st.SentChannelData > 0 && st.RecvChannelData > 0 {
			return i + 1
		}
	}
	t.Fatalf("after 10 s of round trips not both paths used: %+v (channel %#x)", r.Stats(), r.Channel(peer))
	return 0
}

// testRelay allocates, exchanges data over both paths and closes. The
// caller checks for goroutine leaks.
func testRelay(t *testing.T, cfg Config, peerIP string) {
	t.Helper()
	peer := echoPeer(t, peerIP)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer r.Close()
	relayed := r.LocalAddr().(*net.UDPAddr).AddrPort()
	if relayed.Addr().String() != peerIP || relayed.Port() == 0 {
		t.Errorf("relayed address %v, want one on %s", relayed, peerIP)
	}
	if r.Lifetime() <= 0 {
		t.Errorf("lifetime %v", r.Lifetime())
	}
	n := roundTrips(t, r, peer)
	if ch := r.Channel(peer); ch < 0x4000 || ch > 0x4FFF {
		t.Errorf("channel %#x for the peer, want one in 0x4000-0x4FFF", ch)
	}
	t.Logf("%s: relayed %v, lifetime %v, both paths after %d round trips, stats %+v", cfg.Transport, relayed, r.Lifetime(), n, r.Stats())
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := r.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close: %v, want net.ErrClosed", err)
	}
	if _, err := r.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(peer)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Close: %v, want net.ErrClosed", err)
	}
}

func TestCoturnUDP(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	s := startCoturn(t, coturnOpts{args: []string{"--lt-cred-mech", "--user=u:p"}})
	testRelay(t, Config{Server: s.addr.String(), Username: "u", Password: "p"}, "127.0.0.1")
}

func TestCoturnTCP(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	s := startCoturn(t, coturnOpts{args: []string{"--lt-cred-mech", "--user=u:p"}})
	testRelay(t, Config{Server: s.addr.String(), Transport: TCP, Username: "u", Password: "p"}, "127.0.0.1")
}

func TestCoturnTLS(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	s := startCoturn(t, coturnOpts{tls: true, args: []string{"--lt-cred-mech", "--user=u:p"}})
	// The certificate is self-signed: trust exactly the one coturn serves.
	tc := &tls.Config{InsecureSkipVerify: true}
	testRelay(t, Config{Server: s.tlsAddr.String(), Transport: TLS, TLSConfig: tc, Username: "u", Password: "p"}, "127.0.0.1")
}

func TestCoturnREST(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	s := startCoturn(t, coturnOpts{args: []string{"--use-auth-secret", "--static-auth-secret=S3cret"}})
	testRelay(t, Config{Server: s.addr.String(), Secret: "S3cret", RESTUser: "alice", RESTTTL: time.Hour}, "127.0.0.1")
}

func TestCoturnIPv6(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no ::1 on this machine: %v", err)
	} else {
		c.Close()
	}
	s := startCoturn(t, coturnOpts{ip: "::1", args: []string{"--lt-cred-mech", "--user=u:p"}})
	testRelay(t, Config{Server: s.addr.String(), Family: IPv6, Username: "u", Password: "p"}, "::1")
}

func TestCoturnErrors(t *testing.T) {
	t.Parallel()
	checkNoLeak(t)
	s := startCoturn(t, coturnOpts{args: []string{"--lt-cred-mech", "--user=u:p", "--user=w:p", "--user-quota=1"}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	t.Run("wrong password", func(t *testing.T) {
		for _, tr := range []Transport{UDP, TCP} {
			_, err := Allocate(ctx, Config{Server: s.addr.String(), Transport: tr, Username: "u", Password: "wrong"})
			se, ok := errors.AsType[*stun.Error](err)
			if !ok || se.Code != stun.CodeUnauthorized {
				t.Errorf("%s: Allocate with a wrong password: %v, want a 401 *stun.Error", tr, err)
			}
		}
	})
	t.Run("quota", func(t *testing.T) {
		r, err := Allocate(ctx, Config{Server: s.addr.String(), Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, err = Allocate(ctx, Config{Server: s.addr.String(), Username: "u", Password: "p"})
		if !errors.Is(err, ErrQuotaReached) {
			t.Fatalf("second allocation over quota 1: %v, want ErrQuotaReached", err)
		}
		if se, ok := errors.AsType[*stun.Error](err); !ok || se.Code != stun.CodeAllocationQuotaReached {
			t.Errorf("error %v does not carry the 486 *stun.Error", err)
		}
	})
	t.Run("forbidden peer and deadlines", func(t *testing.T) {
		r, err := Allocate(ctx, Config{Server: s.addr.String(), Username: "w", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		// coturn refuses 0.0.0.0 even with loopback peers allowed.
		_, err = r.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("0.0.0.0:9")))
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("WriteTo 0.0.0.0: %v, want ErrForbidden", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) {
			t.Errorf("WriteTo error %T, want *net.OpError", err)
		}
		t.Logf("WriteTo 0.0.0.0:9: %v", err)
		r.SetReadDeadline(time.Now().Add(-time.Second))
		_, _, err = r.ReadFrom(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) {
			t.Errorf("ReadFrom past the deadline: %v, want *net.OpError wrapping os.ErrDeadlineExceeded", err)
		}
		// A deadline that passes while ReadFrom waits.
		r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, _, err = r.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("ReadFrom: %v, want os.ErrDeadlineExceeded", err)
		}
	})
}
