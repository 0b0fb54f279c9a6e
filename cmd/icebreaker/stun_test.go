package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// These tests run `icebreaker stun` through run() against responders on
// loopback built from the stun package.

// stunReply builds the answer to a parsed request from from; nil answers
// nothing.
type stunReply func(m *stun.Message, from netip.AddrPort) []byte

func stunMapped(m *stun.Message, from netip.AddrPort) []byte {
	b := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
	return stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, m.TransactionID)
}

// stunUDPResponder answers on a loopback UDP socket until the test ends.
func stunUDPResponder(t *testing.T, network string, reply stunReply) netip.AddrPort {
	t.Helper()
	ip := "127.0.0.1"
	if network == "udp6" {
		ip = "::1"
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var m stun.Message
			if m.Parse(buf[:n]) != nil || reply == nil {
				continue
			}
			if r := reply(&m, from); r != nil {
				conn.WriteToUDPAddrPort(r, from)
			}
		}
	})
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// stunStreamResponder answers STUN over TCP (or TLS, with cfg) on
// loopback until the test ends.
func stunStreamResponder(t *testing.T, cfg *tls.Config, reply stunReply) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if cfg != nil {
				c = tls.Server(c, cfg)
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
				r := bufio.NewReader(c)
				for {
					var hdr [stun.HeaderSize]byte
					if _, err := io.ReadFull(r, hdr[:]); err != nil {
						return
					}
					msg := make([]byte, stun.HeaderSize+int(binary.BigEndian.Uint16(hdr[2:4])))
					copy(msg, hdr[:])
					if _, err := io.ReadFull(r, msg[stun.HeaderSize:]); err != nil {
						return
					}
					var m stun.Message
					if m.Parse(msg) != nil {
						return
					}
					if resp := reply(&m, from); resp != nil {
						c.Write(resp)
					}
				}
			})
		}
	})
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

// runStunCmd runs `icebreaker stun args...` and returns the exit status,
// stdout and stderr, checking that no goroutine is left behind.
func runStunCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var code int
	checkNoLeak(t, fmt.Sprintf("stun %v", args), func() {
		code = run(ctx, append([]string{"stun"}, args...), &out, &errb)
	})
	return code, out.String(), errb.String()
}

func TestStunText(t *testing.T) {
	srv := stunUDPResponder(t, "udp4", stunMapped)
	// Flags may follow the server.
	code, out, errs := runStunCmd(t, srv.String(), "--rto", "200ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("output:\n%s", out)
	}
	field := func(i int, name string) string {
		f := strings.Fields(lines[i])
		if len(f) < 2 || f[0] != name {
			t.Fatalf("line %d = %q, want %s ...", i, lines[i], name)
		}
		return f[1]
	}
	mapped, local := field(0, "mapped"), field(1, "local")
	if mapped != local || !strings.HasPrefix(mapped, "127.0.0.1:") {
		t.Errorf("mapped %s, local %s", mapped, local)
	}
	if got := field(2, "server"); got != srv.String() || !strings.HasSuffix(lines[2], "(udp)") {
		t.Errorf("server line %q", lines[2])
	}
	if rtt := field(3, "rtt"); !strings.HasSuffix(rtt, "ms") {
		t.Errorf("rtt %q", rtt)
	}
}

func TestStunJSON(t *testing.T) {
	cases := []struct {
		transport string
		server    func(t *testing.T) netip.AddrPort
		args      []string
	}{
		{"udp", func(t *testing.T) netip.AddrPort { return stunUDPResponder(t, "udp4", stunMapped) }, nil},
		{"udp", func(t *testing.T) netip.AddrPort { return stunUDPResponder(t, "udp6", stunMapped) }, []string{"-6"}},
		{"tcp", func(t *testing.T) netip.AddrPort { return stunStreamResponder(t, nil, stunMapped) }, []string{"--transport", "tcp"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{tc.transport}, tc.args...), " "), func(t *testing.T) {
			srv := tc.server(t)
			code, out, errs := runStunCmd(t, append(tc.args, "--json", srv.String())...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			checkStunJSON(t, out, srv, tc.transport)
		})
	}
}

func checkStunJSON(t *testing.T, out string, srv netip.AddrPort, transport string) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if len(raw) != 5 {
		t.Errorf("keys %v, want mapped, local, server, transport, rtt_ms", raw)
	}
	var res struct {
		Mapped, Local, Server, Transport string
		RTT                              *float64 `json:"rtt_ms"`
	}
	json.Unmarshal([]byte(out), &res)
	if res.Mapped != res.Local || res.Server != srv.String() || res.Transport != transport || res.RTT == nil || *res.RTT < 0 {
		t.Errorf("result %s", out)
	}
	if ap, err := netip.ParseAddrPort(res.Mapped); err != nil || ap.Addr() != srv.Addr() {
		t.Errorf("mapped %q is not on %s", res.Mapped, srv.Addr())
	}
}

// stunTestCert makes a self-signed certificate for 127.0.0.1 and returns
// the server's TLS configuration and the certificate's PEM file.
func stunTestCert(t *testing.T) (*tls.Config, string) {
	c := testutil.SelfSignedCert(t)
	certFile, _ := c.WriteFiles(t, t.TempDir())
	return c.Server, certFile
}

func TestStunTLS(t *testing.T) {
	cfg, caFile := stunTestCert(t)
	srv := stunStreamResponder(t, cfg, stunMapped)
	for _, args := range [][]string{{"--ca", caFile}, {"--insecure"}} {
		code, out, errs := runStunCmd(t, append(args, "--transport", "tls", "--json", srv.String())...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		checkStunJSON(t, out, srv, "tls")
	}
	// Without --ca or --insecure the self-signed certificate is refused.
	code, _, errs := runStunCmd(t, "--transport", "tls", srv.String())
	t.Logf("stderr: %s", errs)
	if code != 1 || !strings.Contains(errs, "certificate") {
		t.Errorf("unverified: exit %d, stderr %q", code, errs)
	}
}

func TestStunFailures(t *testing.T) {
	silent := stunUDPResponder(t, "udp4", nil)
	denied := stunUDPResponder(t, "udp4", func(m *stun.Message, _ netip.AddrPort) []byte {
		b := stun.AppendHeader(nil, stun.BindingError, m.TransactionID)
		return stun.AppendErrorCode(b, stun.CodeForbidden, "")
	})
	empty := stunUDPResponder(t, "udp4", func(m *stun.Message, _ netip.AddrPort) []byte {
		return stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
	})
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"timeout", []string{"--timeout", "300ms", "--rto", "100ms", silent.String()}, 1, "no response from " + silent.String() + " (udp) in "},
		{"error response", []string{denied.String()}, 1, "answered with error 403 Forbidden"},
		{"malformed response", []string{empty.String()}, 1, "malformed response from " + empty.String()},
		{"unknown flag", []string{"--bogus", silent.String()}, 2, "flag provided but not defined: -bogus"},
		{"no server", nil, 2, "missing HOST"},
		{"two servers", []string{"a", "b"}, 2, "one server only"},
		{"bad transport", []string{"--transport", "sctp", "a"}, 2, "--transport must be"},
		{"both families", []string{"-4", "-6", "a"}, 2, "exclude each other"},
		{"family mismatch", []string{"-6", "127.0.0.1"}, 2, "does not match -6"},
		{"bad port", []string{"127.0.0.1:99999"}, 2, "bad port"},
		{"ca without tls", []string{"--ca", "x.pem", "a"}, 2, "--transport tls only"},
		{"bad timeout", []string{"--timeout", "0s", "a"}, 2, "--timeout must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runStunCmd(t, tc.args...)
			t.Logf("stderr: %s", errs)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
			// One clear line: the last line of stderr is the error.
			if tc.code == 1 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("more than one line: %q", errs)
			}
		})
	}
}

// nxdomainServer answers every DNS query on loopback with NXDOMAIN (RFC
// 1035, Section 4.1.1: RCODE 3), so name resolution fails without a
// packet leaving the host.
func nxdomainServer(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			// Keep the header and the question; drop everything else.
			end := 12
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			end += 5 // the root label, QTYPE, QCLASS
			if end > len(q) {
				continue
			}
			r := append([]byte(nil), q[:end]...)
			r[2] = 0x80 | q[2]&0x01 // QR, RD copied
			r[3] = 0x80 | 3         // RA, NXDOMAIN
			binary.BigEndian.PutUint16(r[4:], 1)
			clear(r[6:12])
			conn.WriteToUDPAddrPort(r, from)
		}
	})
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	return conn.LocalAddr().String()
}

// TestStunDNSFailure points the resolver at a loopback server that
// answers NXDOMAIN. Not parallel: it replaces the package's resolver.
func TestStunDNSFailure(t *testing.T) {
	dns := nxdomainServer(t)
	old := resolver
	resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns)
	}}
	t.Cleanup(func() { resolver = old })
	code, _, errs := runStunCmd(t, "nosuch.invalid:3478")
	t.Logf("stderr: %s", errs)
	if code != 1 || !strings.Contains(errs, "cannot resolve nosuch.invalid: ") || !strings.Contains(errs, "no such host") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestSplitServer(t *testing.T) {
	cases := []struct {
		in   string
		host string
		port uint16
		bad  bool
	}{
		{in: "stun.example.org", host: "stun.example.org", port: 3478},
		{in: "stun.example.org:19302", host: "stun.example.org", port: 19302},
		{in: "192.0.2.1", host: "192.0.2.1", port: 3478},
		{in: "192.0.2.1:1", host: "192.0.2.1", port: 1},
		{in: "2001:db8::1", host: "2001:db8::1", port: 3478},
		{in: "[2001:db8::1]", host: "2001:db8::1", port: 3478},
		{in: "[2001:db8::1]:5349", host: "2001:db8::1", port: 5349},
		{in: "host:0", bad: true},
		{in: "host:http", bad: true},
		{in: ":3478", bad: true},
		{in: "a:b:c", bad: true},
	}
	for _, tc := range cases {
		host, port, err := splitServer(tc.in, 3478)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("%q: %q %d %v, want %q %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}
