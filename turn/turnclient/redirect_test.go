package turnclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// The client follows one 300 ALTERNATE-SERVER (RFC 8489, Section 10; RFC
// 8656, Section 7.1, which lets a TURN server redirect Allocate) over UDP
// and TCP, and refuses a second one with a *stunclient.AlternateServerError.

// redirector answers every Allocate request with 300 Try Alternate and
// ALTERNATE-SERVER to, without authentication. Other packets are ignored.
type redirector struct {
	addr      netip.AddrPort
	allocates atomic.Int32 // Allocate requests answered
	domain    string       // ALTERNATE-DOMAIN to send, if set
	tls       *tls.Config  // for network "tls"
}

// answer returns the 300 response to b, or nil when b is not an Allocate
// request.
func (rd *redirector) answer(b []byte, to netip.AddrPort) []byte {
	var m stun.Message
	if err := m.Parse(b); err != nil || m.Type != (stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}) {
		return nil
	}
	rd.allocates.Add(1)
	resp := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassError}, m.TransactionID)
	resp = stun.AppendErrorCode(resp, stun.CodeTryAlternate, "Try Alternate")
	resp = stun.AppendAddress(resp, stun.AttrAlternateServer, to)
	if rd.domain != "" {
		resp = stun.AppendAttrString(resp, stun.AttrAlternateDomain, rd.domain)
	}
	return stun.AppendFingerprint(resp)
}

// startRedirector starts a redirector on 127.0.0.1 over network ("udp"
// or "tcp") that sends Allocate to to, or to itself when to is the zero
// value. Cleanup stops it.
func startRedirector(t *testing.T, network string, to netip.AddrPort) *redirector {
	t.Helper()
	return startRedirectorWith(t, network, to, &redirector{})
}

// startRedirectorWith is startRedirector for a redirector that may send
// ALTERNATE-DOMAIN, and over network "tls" with rd.tls.
func startRedirectorWith(t *testing.T, network string, to netip.AddrPort, rd *redirector) *redirector {
	t.Helper()
	loopback := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0)
	var wg sync.WaitGroup
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
		if err != nil {
			t.Fatal(err)
		}
		rd.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
		if !to.IsValid() {
			to = rd.addr
		}
		wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if resp := rd.answer(buf[:n], to); resp != nil {
					c.WriteToUDPAddrPort(resp, from)
				}
			}
		})
		t.Cleanup(func() {
			c.Close()
			wg.Wait()
		})
	case "tcp", "tls":
		tl, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(loopback))
		if err != nil {
			t.Fatal(err)
		}
		rd.addr = tl.Addr().(*net.TCPAddr).AddrPort()
		var l net.Listener = tl
		if network == "tls" {
			l = tls.NewListener(tl, rd.tls)
		}
		if !to.IsValid() {
			to = rd.addr
		}
		var mu sync.Mutex
		conns := map[net.Conn]struct{}{}
		closed := false
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				if closed {
					mu.Unlock()
					c.Close()
					return
				}
				conns[c] = struct{}{}
				mu.Unlock()
				wg.Go(func() {
					defer func() {
						mu.Lock()
						delete(conns, c)
						mu.Unlock()
						c.Close()
					}()
					rd.serveStream(c, to)
				})
			}
		})
		t.Cleanup(func() {
			mu.Lock()
			closed = true
			l.Close()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	default:
		t.Fatalf("redirector over %q", network)
	}
	return rd
}

// serveStream answers the STUN messages framed on c (RFC 8489, Section
// 6.2.2) until c ends or loses its framing.
func (rd *redirector) serveStream(c net.Conn, to netip.AddrPort) {
	br := bufio.NewReader(c)
	for {
		hdr, err := br.Peek(stun.HeaderSize)
		if err != nil {
			return
		}
		n, err := stun.MessageLength(hdr)
		if err != nil {
			return
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return
		}
		if resp := rd.answer(b, to); resp != nil {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}
}

func TestRedirect(t *testing.T) {
	checkNoLeak(t)
	s := startOurs(t, ourOpts{})
	for _, tc := range []struct {
		tr     Transport
		target netip.AddrPort // our server's listener for tr
	}{
		{UDP, s.udp},
		{TCP, s.tcp},
	} {
		network := "udp"
		if tc.tr == TCP {
			network = "tcp"
		}
		t.Run("follow over "+tc.tr.String(), func(t *testing.T) {
			rd := startRedirector(t, network, tc.target)
			peer := echoPeer(t, "127.0.0.1")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			r, err := Allocate(ctx, Config{Server: rd.addr.String(), Transport: tc.tr, Username: "u", Password: "p"})
			if err != nil {
				t.Fatalf("Allocate through the redirector: %v", err)
			}
			defer r.Close()
			if rd.allocates.Load() == 0 {
				t.Error("the redirector saw no Allocate")
			}
			if got := r.Server(); got != tc.target {
				t.Errorf("Server() = %v, want the alternate %v", got, tc.target)
			}
			if rel := r.LocalAddr().(*net.UDPAddr).AddrPort(); rel.Addr() != netip.MustParseAddr("127.0.0.1") || rel.Port() == 0 {
				t.Errorf("relayed address %v, want one on 127.0.0.1", rel)
			}
			n := roundTrips(t, r, peer) // permissions, channels and refreshes go to the alternate
			t.Logf("%s: redirected from %v to %v, both paths after %d round trips", tc.tr, rd.addr, r.Server(), n)
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		t.Run("refuse a second redirection over "+tc.tr.String(), func(t *testing.T) {
			second := startRedirector(t, network, tc.target)
			first := startRedirector(t, network, second.addr)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			r, err := Allocate(ctx, Config{Server: first.addr.String(), Transport: tc.tr, Username: "u", Password: "p"})
			if err == nil {
				r.Close()
				t.Fatalf("Allocate through two redirectors succeeded on %v", r.Server())
			}
			checkAlternateError(t, err, tc.target)
			if first.allocates.Load() == 0 || second.allocates.Load() == 0 {
				t.Errorf("Allocates seen: %d by the first redirector, %d by the second; want both asked",
					first.allocates.Load(), second.allocates.Load())
			}
			t.Logf("%s: %v", tc.tr, err)
		})
		t.Run("refuse a redirection to itself over "+tc.tr.String(), func(t *testing.T) {
			rd := startRedirector(t, network, netip.AddrPort{})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			r, err := Allocate(ctx, Config{Server: rd.addr.String(), Transport: tc.tr, Username: "u", Password: "p"})
			if err == nil {
				r.Close()
				t.Fatal("Allocate through a self-redirection succeeded")
			}
			checkAlternateError(t, err, rd.addr)
			if n := rd.allocates.Load(); n == 0 {
				t.Error("the redirector saw no Allocate")
			}
		})
	}
}

// TestRedirectTLSAlternateDomain: over TLS the alternate's certificate is
// validated against ALTERNATE-DOMAIN when the 300 carries one, and
// against the first server's name when it does not (RFC 8489, Section 10).
// The redirector's certificate is for front.test, the alternate's for
// alt.test only.
func TestRedirectTLSAlternateDomain(t *testing.T) {
	checkNoLeak(t)
	s := startOurs(t, ourOpts{tls: true, tlsNames: []string{"alt.test"}})
	front := testutil.SelfSignedCert(t, "front.test")
	roots := front.Pool.Clone() // trusts both certificates
	roots.AddCert(s.tlsLeaf)
	client := &tls.Config{RootCAs: roots, ServerName: "front.test"}
	for _, tc := range []struct {
		name, domain string
		ok           bool
	}{
		{"with ALTERNATE-DOMAIN", "alt.test", true},
		{"without ALTERNATE-DOMAIN", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := startRedirectorWith(t, "tls", s.tls, &redirector{domain: tc.domain, tls: front.Server})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			r, err := Allocate(ctx, Config{Server: rd.addr.String(), Transport: TLS, TLSConfig: client, Username: "u", Password: "p"})
			if rd.allocates.Load() == 0 {
				t.Error("the redirector saw no Allocate")
			}
			if !tc.ok {
				if err == nil {
					r.Close()
					t.Fatal("the alternate's certificate for alt.test was accepted for front.test")
				}
				if _, ok := errors.AsType[x509.HostnameError](err); !ok {
					t.Fatalf("error %v, want an x509.HostnameError for front.test", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Allocate redirected to alt.test: %v", err)
			}
			defer r.Close()
			if got := r.Server(); got != s.tls {
				t.Errorf("Server() = %v, want the alternate %v", got, s.tls)
			}
			roundTrips(t, r, echoPeer(t, "127.0.0.1"))
			if client.ServerName != "front.test" {
				t.Errorf("the caller's TLS config was changed: ServerName %q", client.ServerName)
			}
		})
	}
}

// checkAlternateError checks that err is a refused redirection to alt:
// a *stunclient.AlternateServerError wrapping the 300 *stun.Error.
func checkAlternateError(t *testing.T, err error, alt netip.AddrPort) {
	t.Helper()
	ae, ok := errors.AsType[*stunclient.AlternateServerError](err)
	if !ok {
		t.Fatalf("error %v (%T), want a *stunclient.AlternateServerError", err, err)
	}
	if ae.Alternate != alt {
		t.Errorf("AlternateServerError.Alternate = %v, want %v", ae.Alternate, alt)
	}
	if se, ok := errors.AsType[*stun.Error](err); !ok || se.Code != stun.CodeTryAlternate {
		t.Errorf("error %v does not carry the 300 *stun.Error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, alt.String()) || strings.Contains(msg, "()") {
		t.Errorf("error message %q does not say where it was redirected and why not followed", msg)
	}
}
