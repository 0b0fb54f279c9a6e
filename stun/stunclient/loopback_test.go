package stunclient

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// These tests run the drivers over real loopback sockets against a tiny
// responder built from the stun package: not a model of any server, just
// enough to answer Binding requests.

func answerBinding(b []byte, from netip.AddrPort) []byte {
	var m stun.Message
	if m.Parse(b) != nil || m.Type != stun.BindingRequest {
		return nil
	}
	r := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
	r = stun.AppendXORAddress(r, stun.AttrXORMappedAddress, from, m.TransactionID)
	r = stun.AppendAttrString(r, stun.AttrSoftware, "loopback responder")
	return stun.AppendFingerprint(r)
}

// udpResponder answers Binding requests on 127.0.0.1 (or ::1) until the
// test ends.
func udpResponder(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
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
			if r := answerBinding(buf[:n], from); r != nil {
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

func TestLoopbackUDP(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			checkGoroutines(t)
			srv := udpResponder(t, tc.network, tc.addr)
			conn, err := net.ListenUDP(tc.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(srv.Addr(), 0)))
			if err != nil {
				t.Fatal(err)
			}
			c := mustNew(t, conn, Config{Software: "icebreaker test", Fingerprint: true})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					res, err := c.Binding(ctx, srv)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Mapped != c.LocalAddr() || res.Server != srv || res.Local != c.LocalAddr() {
						t.Errorf("result %+v, local %s", res, c.LocalAddr())
					}
				})
			}
			wg.Wait()
			if s := c.Stats(); s.Received != 20 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestLoopbackTCP(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		from := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		r := bufio.NewReader(conn)
		for {
			b, err := readFrame(r, nil, nil)
			if err != nil {
				return
			}
			if resp := answerBinding(b, from); resp != nil {
				// Two writes, to split the response on the wire.
				conn.Write(resp[:9])
				conn.Write(resp[9:])
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewStream(conn, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for range 3 {
		res, err := c.Binding(t.Context(), netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Mapped != c.LocalAddr() || res.Server != ln.Addr().(*net.TCPAddr).AddrPort() {
			t.Errorf("result %+v, local %s", res, c.LocalAddr())
		}
	}
}
