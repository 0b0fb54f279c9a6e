package stunclient

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// addrConn gives a net.Pipe end TCP addresses.
type addrConn struct {
	net.Conn
	local, remote netip.AddrPort
}

func (c addrConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }
func (c addrConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

// pipePair returns a stream Client over net.Pipe and the server's end.
func pipePair(t *testing.T, cfg Config) (*Client, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	local := netip.MustParseAddrPort(clientAddr)
	c, err := NewStream(addrConn{a, local, server}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		b.Close()
	})
	return c, addrConn{b, server, local}
}

// readRequests reads n framed requests from the server end.
func readRequests(t *testing.T, r *bufio.Reader, n int) []*stun.Message {
	t.Helper()
	var out []*stun.Message
	for range n {
		b, err := readFrame(r, nil, nil)
		if err != nil {
			t.Errorf("server read: %v", err)
			return out
		}
		m := new(stun.Message)
		if err := m.Parse(b); err != nil {
			t.Errorf("server parse: %v", err)
			return out
		}
		out = append(out, m)
	}
	return out
}

// TestStreamFraming: responses split across writes, interleaved with a
// ChannelData frame (framed by package turn's rule, through
// Config.StreamOther), and answering two transactions in reverse order are
// all put back together and matched. RFC 8489, Section 6.2.2.
func TestStreamFraming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := pipePair(t, Config{StreamOther: turn.StreamFramer(false)})
		go func() {
			reqs := readRequests(t, bufio.NewReader(srv), 2)
			if len(reqs) != 2 {
				return
			}
			var stream []byte
			stream = append(stream, 0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0) // ChannelData, padded
			for i := 1; i >= 0; i-- {
				m := reqs[i]
				mapped := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.10"), idPort(m.TransactionID))
				stream = append(stream, bindingSuccess(m, mapped)...)
			}
			// Write in awkward pieces: inside the first header, across
			// the message boundary, then the rest.
			for _, cut := range [][2]int{{0, 7}, {7, 19}, {19, 50}, {50, len(stream)}} {
				if _, err := srv.Write(stream[cut[0]:cut[1]]); err != nil {
					t.Errorf("server write: %v", err)
					return
				}
			}
		}()
		type result struct {
			res BindingResult
			err error
		}
		results := make(chan result, 2)
		for range 2 {
			go func() {
				res, err := c.Binding(t.Context(), netip.AddrPort{})
				results <- result{res, err}
			}()
		}
		for range 2 {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.res.Server != server || r.res.Local != netip.MustParseAddrPort(clientAddr) || r.res.Mapped.Addr() != netip.MustParseAddr("203.0.113.10") {
				t.Errorf("result %+v", r.res)
			}
			want := idPort(r.res.Response.Message.TransactionID)
			if r.res.Mapped.Port() != want {
				t.Errorf("mapped port %d, want %d: responses mismatched", r.res.Mapped.Port(), want)
			}
		}
		if s := c.Stats(); s.Received != 2 || s.Unmatched != 1 || s.Sent != 2 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestStreamTimeout: over a stream the request is sent once and the
// transaction fails after 39.5 s. RFC 8489, Section 6.2.2.
func TestStreamTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := pipePair(t, Config{})
		go io.Copy(io.Discard, srv)
		start := time.Now()
		_, err := c.Binding(t.Context(), netip.AddrPort{})
		te, ok := errors.AsType[*TimeoutError](err)
		if !ok {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) != StreamTimeout || te.Attempts != 1 || te.Server != server {
			t.Errorf("after %v: %+v", time.Since(start), te)
		}
		if s := c.Stats(); s.Sent != 1 || s.Retransmits != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestStreamEnds: a peer that closes the connection, or that sends
// something that is not STUN, fails the outstanding transaction at once
// and stops the client.
func TestStreamEnds(t *testing.T) {
	cases := []struct {
		name  string
		reply []byte
	}{
		{"closed", nil},
		{"bad framing", []byte{0xff, 0xff, 0xff, 0xff}},
		{"ChannelData without StreamOther", []byte{0x40, 0x00, 0x00, 0x01, 1, 0, 0, 0}},
		{"truncated", stun.AppendHeader(nil, stun.BindingSuccess, stun.TransactionID{})[:10]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, srv := pipePair(t, Config{})
				go func() {
					readRequests(t, bufio.NewReader(srv), 1)
					srv.Write(tc.reply)
					srv.Close()
				}()
				start := time.Now()
				_, err := c.Binding(t.Context(), netip.AddrPort{})
				if err == nil || errors.Is(err, ErrTimeout) || time.Since(start) != 0 {
					t.Fatalf("after %v: err = %v", time.Since(start), err)
				}
				if _, err2 := c.Binding(t.Context(), netip.AddrPort{}); err2 == nil {
					t.Error("client still works after its stream ended")
				}
			})
		})
	}
}

// TestStreamAlternate: a stream client cannot follow a 300 itself; it
// says where to go.
func TestStreamAlternate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := pipePair(t, Config{})
		alt := netip.MustParseAddrPort(altAddr)
		go func() {
			reqs := readRequests(t, bufio.NewReader(srv), 1)
			if len(reqs) == 1 {
				b := errorResponse(reqs[0], stun.CodeTryAlternate)
				b = stun.AppendAddress(b, stun.AttrAlternateServer, alt)
				b = stun.AppendAttrString(b, stun.AttrAlternateDomain, "stun2.example.org")
				srv.Write(b)
			}
		}()
		_, err := c.Binding(t.Context(), netip.AddrPort{})
		ae, ok := errors.AsType[*AlternateServerError](err)
		if !ok || ae.Alternate != alt || ae.Domain != "stun2.example.org" {
			t.Fatalf("err = %v", err)
		}
		if _, err := c.Binding(t.Context(), alt); err == nil {
			t.Error("stream client accepted another server")
		}
	})
}

// idPort derives a port from a transaction ID, so a test can tell which
// request a response answers.
func idPort(id stun.TransactionID) uint16 { return uint16(id[0])<<8 | uint16(id[1]) }
