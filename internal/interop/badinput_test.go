package interop

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// What the server must do with one crafted datagram.
type expect int

const (
	drop    expect = iota // no response (RFC 8489, Section 6.3: silently discarded)
	answer                // a success response (the input is odd but valid)
	errResp               // an error response
)

// badDatagram is one crafted datagram and what the server must do with it.
type badDatagram struct {
	name string
	b    []byte
	id   stun.TransactionID // to match a response, if any
	want expect
	code int // for errResp: the error code, 0 for any
}

// badDatagrams builds the crafted datagrams, each with its own transaction
// ID (bytes 8-19).
func badDatagrams() []badDatagram {
	var ds []badDatagram
	add := func(name string, want expect, code int, build func(id stun.TransactionID) []byte) {
		id := stun.NewTransactionID()
		ds = append(ds, badDatagram{name: name, b: build(id), id: id, want: want, code: code})
	}
	req := func(id stun.TransactionID) []byte { return stun.AppendHeader(nil, stun.BindingRequest, id) }
	withFP := func(id stun.TransactionID) []byte { return stun.AppendFingerprint(req(id)) }
	setLen := func(b []byte, n int) []byte { binary.BigEndian.PutUint16(b[2:4], uint16(n)); return b }

	add("empty datagram", drop, 0, func(stun.TransactionID) []byte { return []byte{} })
	add("truncated header", drop, 0, func(id stun.TransactionID) []byte { return req(id)[:12] })
	add("first two bits set", drop, 0, func(id stun.TransactionID) []byte {
		b := withFP(id)
		b[0] |= 0xc0
		return b
	})
	// Without the magic cookie a request is a classic RFC 3489 one and
	// gets answered, so these break something else as well.
	add("no cookie, length not a multiple of 4", drop, 0, func(id stun.TransactionID) []byte {
		b := stun.AppendClassicHeader(nil, stun.BindingRequest, 0xdeadbeef, id)
		return setLen(append(b, 0, 0, 0, 0, 0, 0, 0, 0), 6)
	})
	add("no cookie, length past the end", drop, 0, func(id stun.TransactionID) []byte {
		return setLen(stun.AppendClassicHeader(nil, stun.BindingRequest, 0xdeadbeef, id), 8)
	})
	add("length past the end", drop, 0, func(id stun.TransactionID) []byte { return setLen(withFP(id), 100) })
	add("length short of the datagram", drop, 0, func(id stun.TransactionID) []byte { return setLen(withFP(id), 0) })
	add("length 0xfffc", drop, 0, func(id stun.TransactionID) []byte { return setLen(withFP(id), 0xfffc) })
	add("attribute length overflows the message", drop, 0, func(id stun.TransactionID) []byte {
		b := stun.AppendAttrString(req(id), stun.AttrSoftware, "abcd")
		binary.BigEndian.PutUint16(b[stun.HeaderSize+2:], 0xffff)
		return b
	})
	add("attribute padding overflows the message", drop, 0, func(id stun.TransactionID) []byte {
		b := stun.AppendAttrString(req(id), stun.AttrSoftware, "abcd")
		binary.BigEndian.PutUint16(b[stun.HeaderSize+2:], 5) // 4+pad4(5) = 12 > 8
		return b
	})
	add("wrong FINGERPRINT", drop, 0, func(id stun.TransactionID) []byte {
		b := withFP(id)
		b[len(b)-1] ^= 0x01
		return b
	})
	add("FINGERPRINT not last", drop, 0, func(id stun.TransactionID) []byte {
		b := withFP(id)
		return stun.AppendAttrString(b, stun.AttrSoftware, "late")
	})
	add("a success response", drop, 0, func(id stun.TransactionID) []byte {
		b := stun.AppendHeader(nil, stun.BindingSuccess, id)
		b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, netip.MustParseAddrPort("192.0.2.1:1"), id)
		return stun.AppendFingerprint(b)
	})
	add("an indication", drop, 0, func(id stun.TransactionID) []byte {
		return stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingIndication, id))
	})
	// The server holds no credentials, so it does not check integrity on
	// a Binding request (stunserver's documented choice, RFC 8489,
	// Section 9): the attribute is understood, never 420.
	add("wrong MESSAGE-INTEGRITY", answer, 0, func(id stun.TransactionID) []byte {
		b := stun.AppendAttrString(req(id), stun.AttrUsername, "nobody")
		b = stun.AppendMessageIntegrity(b, []byte("not the key"))
		b[len(b)-1] ^= 0xff
		return stun.AppendFingerprint(b)
	})
	add("wrong MESSAGE-INTEGRITY-SHA256", answer, 0, func(id stun.TransactionID) []byte {
		b := stun.AppendAttrString(req(id), stun.AttrUsername, "nobody")
		b = stun.AppendMessageIntegritySHA256(b, []byte("not the key"))
		b[len(b)-1] ^= 0xff
		return stun.AppendFingerprint(b)
	})
	add("unknown comprehension-required attribute", errResp, stun.CodeUnknownAttribute, func(id stun.TransactionID) []byte {
		return stun.AppendFingerprint(stun.AppendAttr(req(id), 0x7ff1, []byte{1, 2, 3, 4}))
	})
	add("unknown method", errResp, 0, func(id stun.TransactionID) []byte {
		return stun.AppendFingerprint(stun.AppendHeader(nil, stun.Type{Method: 0x0ff, Class: stun.ClassRequest}, id))
	})
	return ds
}

// TestServeSurvivesBadInput sends crafted and random datagrams and bad
// streams to a running `icebreaker serve`, checks what it answers to each
// crafted one, and checks that it still answers Binding requests over UDP
// and TCP afterwards, with its process alive.
func TestServeSurvivesBadInput(t *testing.T) {
	t.Parallel()
	icebreaker(t) // build before testContext starts the clock
	ctx := testContext(t)
	srv := startServe(t, ctx, nil, "--listen", "127.0.0.1", "--port", "0", "--log-level", "warn")

	t.Run("crafted datagrams", func(t *testing.T) { craftedDatagrams(t, ctx, srv.udp) })
	t.Run("random datagrams", func(t *testing.T) { randomDatagrams(t, ctx, srv.udp) })
	t.Run("bad streams", func(t *testing.T) { badStreams(t, ctx, srv.tcp) })

	t.Run("still serving", func(t *testing.T) {
		m, local, err := udpBinding(ctx, srv.udp)
		if err != nil {
			t.Fatalf("UDP: %v", err)
		}
		checkReflexive(t, "UDP", m, local)
		m, local, err = tcpBinding(ctx, srv.tcp)
		if err != nil {
			t.Fatalf("TCP: %v", err)
		}
		checkReflexive(t, "TCP", m, local)
	})
	if srv.proc.Exited() {
		t.Fatalf("server exited: %v\n%s", srv.proc.Wait(), srv.proc.Output())
	}
	for _, bad := range []string{"panic", "fatal error", "DATA RACE"} {
		if strings.Contains(srv.proc.Output(), bad) {
			t.Fatalf("server output has %q:\n%s", bad, srv.proc.Output())
		}
	}
}

// craftedDatagrams sends every crafted datagram from one socket, then a
// proper Binding request. One socket's datagrams reach one server socket in
// order and are handled in order, so once the probe's response is in, any
// response to the crafted ones has arrived before it.
func craftedDatagrams(t *testing.T, ctx context.Context, server netip.AddrPort) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	ds := badDatagrams()
	for _, d := range ds {
		if _, err := c.WriteToUDPAddrPort(d.b, server); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
	}
	probe, probeID := bindingRequest()
	if _, err := c.WriteToUDPAddrPort(probe, server); err != nil {
		t.Fatal(err)
	}

	got := map[stun.TransactionID]*stun.Message{}
	buf := make([]byte, 2048)
	if d, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(d)
	}
	for got[probeID] == nil {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("waiting for the probe's response: %v", err)
		}
		m := new(stun.Message)
		if err := m.Parse(append([]byte(nil), buf[:n]...)); err != nil {
			t.Fatalf("server sent a response that does not parse: %v", err)
		}
		got[m.TransactionID] = m
	}
	checkReflexive(t, "probe", got[probeID], local)

	for _, d := range ds {
		m := got[d.id]
		switch d.want {
		case drop:
			if m != nil {
				t.Errorf("%s: answered with %v, want no response", d.name, m.Type)
			}
		case answer:
			if m == nil {
				t.Errorf("%s: no response, want a success response", d.name)
				continue
			}
			checkReflexive(t, d.name, m, local)
		case errResp:
			if m == nil {
				t.Errorf("%s: no response, want an error response", d.name)
				continue
			}
			code, reason, err := m.ErrorCode()
			if m.Type.Class != stun.ClassError || err != nil || d.code != 0 && code != d.code {
				t.Errorf("%s: got %v %d %q (%v), want an error response %d", d.name, m.Type, code, reason, err, d.code)
			}
			if d.code == stun.CodeUnknownAttribute {
				if v, ok := m.Get(stun.AttrUnknownAttributes); !ok || len(v) < 2 || binary.BigEndian.Uint16(v) != 0x7ff1 {
					t.Errorf("%s: UNKNOWN-ATTRIBUTES %x, want 7ff1", d.name, v)
				}
			}
		}
	}
}

// randomDatagrams sends 10,000 datagrams from a fixed seed: a third pure
// noise, a third a valid Binding request header with a random body, and a
// third a valid request with one byte changed. Responses, if any, are not
// read: the socket's receive buffer drops what does not fit.
func randomDatagrams(t *testing.T, ctx context.Context, server netip.AddrPort) {
	const count = 10000
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(5780, 8489))
	buf := make([]byte, 0, 1500)
	base := stun.AppendFingerprint(stun.AppendAttrString(
		stun.AppendHeader(nil, stun.BindingRequest, stun.TransactionID{1, 2, 3}), stun.AttrSoftware, "fuzz"))
	sent := 0
	for i := range count {
		if i%256 == 0 && ctx.Err() != nil {
			break // bounded in time as well as count
		}
		buf = buf[:0]
		switch i % 3 {
		case 0:
			buf = buf[:r.IntN(cap(buf)+1)]
			for j := range buf {
				buf[j] = byte(r.Uint32())
			}
		case 1:
			var id stun.TransactionID
			binary.BigEndian.PutUint64(id[:], r.Uint64())
			buf = stun.AppendHeader(buf, stun.BindingRequest, id)
			body := 4 * r.IntN(64)
			for range body {
				buf = append(buf, byte(r.Uint32()))
			}
			binary.BigEndian.PutUint16(buf[2:4], uint16(body))
		case 2:
			buf = append(buf, base...)
			buf[r.IntN(len(buf))] ^= byte(1 + r.IntN(255))
		}
		if _, err := c.WriteToUDPAddrPort(buf, server); err != nil {
			// The loopback queue may refuse a burst; that is not the
			// server's doing.
			if !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("datagram %d: %v", i, err)
			}
			continue
		}
		sent++
	}
	if sent < count/2 {
		t.Fatalf("sent only %d of %d datagrams", sent, count)
	}
	t.Logf("sent %d random datagrams", sent)
}

// badStreams opens a healthy TCP connection, then connections that send
// garbage and a header announcing a huge message: the server must close
// those, and the healthy one and new ones must still work.
func badStreams(t *testing.T, ctx context.Context, server netip.AddrPort) {
	var d net.Dialer
	healthy, err := d.DialContext(ctx, "tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()
	if _, err := tcpBindingOn(ctx, healthy); err != nil {
		t.Fatalf("healthy connection: %v", err)
	}

	huge := stun.AppendHeader(nil, stun.BindingRequest, stun.NewTransactionID())
	binary.BigEndian.PutUint16(huge[2:4], 0xfffc) // 65,552 bytes in all
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")},
		{"TLS ClientHello start", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"header with length not a multiple of 4", func() []byte {
			b := stun.AppendHeader(nil, stun.BindingRequest, stun.NewTransactionID())
			binary.BigEndian.PutUint16(b[2:4], 7)
			return append(b, 0, 0, 0, 0, 0, 0, 0)
		}()},
		{"header announcing 65552 bytes", huge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := d.DialContext(ctx, "tcp4", server.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.b); err != nil {
				t.Fatal(err)
			}
			// The server must close the connection, long before its idle
			// timeout (30 s by default) or ctx ends.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatalf("connection still open after 10 s")
			case err != nil && !errors.Is(err, syscall.ECONNRESET):
				t.Fatalf("read: %v", err)
			case n != 0:
				t.Errorf("server sent %d bytes in reply to garbage", n)
			}
		})
	}

	if _, err := tcpBindingOn(ctx, healthy); err != nil {
		t.Fatalf("healthy connection after the bad ones: %v", err)
	}
}
