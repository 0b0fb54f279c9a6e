package stunserver

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

func TestUDPBinding(t *testing.T) {
	for _, fam := range []struct{ name, listen, client string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "[::1]:0", "::1"},
		{"dualstack", "[::]:0", "127.0.0.1"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			if fam.name != "ipv4" {
				if ln, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					ln.Close()
				}
			}
			s := startServer(t, Config{UDP: netip.MustParseAddrPort(fam.listen), UDPSockets: 2})
			srv := endpoint(t, s, "udp", RolePrimary)
			to := netip.AddrPortFrom(netip.MustParseAddr(fam.client), srv.Port())
			c := udpClient(t, netip.MustParseAddr(fam.client))
			id := stun.NewTransactionID()
			m, from := exchange(t, c, to, request(stun.BindingRequest, id, true))
			checkSuccess(t, m, id, udpLocal(c))
			if from != to {
				t.Errorf("response from %v, want %v", from, to)
			}
			for _, a := range []stun.AttrType{stun.AttrSoftware, stun.AttrMappedAddress, stun.AttrOtherAddress, stun.AttrResponseOrigin} {
				if m.Has(a) {
					t.Errorf("response has %s; the server has no SOFTWARE and no RFC 5780", a)
				}
			}
			if st := s.Stats(); st.Requests != 1 || st.Responses != 1 {
				t.Errorf("Stats = %+v, want 1 request and 1 response", st)
			}
		})
	}
}

func TestSoftwareOnlyWhenConfigured(t *testing.T) {
	const sw = "icebreaker test 1.0"
	s := startServer(t, Config{UDP: loop4, Software: sw, UDPSockets: 1})
	to := endpoint(t, s, "udp", RolePrimary)
	c := udpClient(t, ip1)
	id := stun.NewTransactionID()
	m, _ := exchange(t, c, to, request(stun.BindingRequest, id, false))
	checkSuccess(t, m, id, udpLocal(c))
	if got, err := m.Software(); err != nil || got != sw {
		t.Errorf("SOFTWARE = %q, %v; want %q", got, err, sw)
	}
	// Error responses carry it too.
	id = stun.NewTransactionID()
	m, _ = exchange(t, c, to, request(stun.BindingRequest, id, false, attr{0x0024, make([]byte, 4)}))
	checkError(t, m, id, stun.CodeUnknownAttribute, 0x0024)
	if got, _ := m.Software(); got != sw {
		t.Errorf("error response SOFTWARE = %q, want %q", got, sw)
	}
}

func TestTCPBinding(t *testing.T) {
	s := startServer(t, Config{TCP: loop4, Software: "x"})
	c, err := net.Dial("tcp", endpoint(t, s, "tcp", RolePrimary).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("one", func(t *testing.T) {
		id := stun.NewTransactionID()
		m := streamExchange(t, c, request(stun.BindingRequest, id, true))
		checkSuccess(t, m, id, localAddr(c))
	})
	t.Run("pipelined", func(t *testing.T) {
		ids := []stun.TransactionID{stun.NewTransactionID(), stun.NewTransactionID(), stun.NewTransactionID()}
		var all []byte
		for _, id := range ids {
			all = append(all, request(stun.BindingRequest, id, true)...)
		}
		if _, err := c.Write(all); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			checkSuccess(t, readStream(t, c), id, localAddr(c))
		}
	})
	t.Run("byte by byte", func(t *testing.T) {
		id := stun.NewTransactionID()
		req := request(stun.BindingRequest, id, true, attr{stun.AttrPadding, make([]byte, 2000)})
		for i := range req {
			if _, err := c.Write(req[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		m := readStream(t, c)
		checkSuccess(t, m, id, localAddr(c))
		if v, _ := m.Get(stun.AttrPadding); len(v) != 2000 {
			t.Errorf("PADDING of %d bytes, want 2000", len(v))
		}
	})
}

func TestTLSBinding(t *testing.T) {
	srvTLS, cliTLS := selfSignedTLS(t)
	s := startServer(t, Config{TLS: loop4, TLSConfig: srvTLS})
	c, err := tls.Dial("tcp", endpoint(t, s, "tls", RolePrimary).String(), cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		id := stun.NewTransactionID()
		m := streamExchange(t, c, request(stun.BindingRequest, id, true))
		checkSuccess(t, m, id, localAddr(c))
	}
	// A client that fails the handshake costs only its connection.
	raw, err := net.Dial("tcp", endpoint(t, s, "tls", RolePrimary).String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write(request(stun.BindingRequest, stun.NewTransactionID(), true)) // not a ClientHello
	waitClosed(t, raw)
	id := stun.NewTransactionID()
	checkSuccess(t, streamExchange(t, c, request(stun.BindingRequest, id, true)), id, localAddr(c))
	if st := s.Stats(); st.TLSHandshakeErrors != 1 {
		t.Errorf("TLSHandshakeErrors = %d, want 1", st.TLSHandshakeErrors)
	}
}

// classicRequest builds an RFC 3489 request: bytes 4-19 are the 128-bit
// transaction ID, with no magic cookie.
func classicRequest(cookie uint32, id stun.TransactionID, attrs ...attr) []byte {
	b := stun.AppendClassicHeader(nil, stun.BindingRequest, cookie, id)
	for _, a := range attrs {
		b = stun.AppendAttr(b, a.t, a.v)
	}
	return b
}

func TestClassicRequest(t *testing.T) {
	s := startServer(t, Config{UDP: loop4, UDPSockets: 1})
	to := endpoint(t, s, "udp", RolePrimary)
	c := udpClient(t, ip1)
	const cookie = 0x01020304
	for _, tc := range []struct {
		name  string
		attrs []attr
	}{
		{"bare", nil},
		// Vovida's stun sends CHANGE-REQUEST without flags in its first test.
		{"change-request without flags", []attr{changeRequest(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := stun.NewTransactionID()
			m, _ := exchange(t, c, to, classicRequest(cookie, id, tc.attrs...))
			if m.Type != stun.BindingSuccess || !m.Classic || m.Cookie != cookie || m.TransactionID != id {
				t.Fatalf("response %v classic=%v cookie=%#x id=%x; want a classic success echoing %#x/%x",
					m.Type, m.Classic, m.Cookie, m.TransactionID, cookie, id)
			}
			if got, err := m.MappedAddress(); err != nil || got != udpLocal(c) {
				t.Errorf("MAPPED-ADDRESS = %v, %v; want %v", got, err, udpLocal(c))
			}
			if m.Has(stun.AttrXORMappedAddress) || m.Has(stun.AttrFingerprint) {
				t.Error("classic response carries XOR-MAPPED-ADDRESS or FINGERPRINT")
			}
		})
	}
	t.Run("unknown attributes, odd count", func(t *testing.T) {
		id := stun.NewTransactionID()
		// RESPONSE-ADDRESS (0x0002) of RFC 3489 is not supported.
		m, _ := exchange(t, c, to, classicRequest(cookie, id, attr{0x0002, make([]byte, 8)}))
		if !m.Classic || m.Cookie != cookie {
			t.Fatalf("error response not classic: %v cookie %#x", m.Type, m.Cookie)
		}
		// RFC 3489, Section 11.2.10 repeats one entry to fill 32 bits.
		checkError(t, m, id, stun.CodeUnknownAttribute, 0x0002, 0x0002)
	})
}

func TestUnknownComprehensionRequired(t *testing.T) {
	s := startServer(t, Config{UDP: loop4, UDPSockets: 1})
	to := endpoint(t, s, "udp", RolePrimary)
	c := udpClient(t, ip1)
	for _, tc := range []struct {
		name    string
		attrs   []attr
		unknown []stun.AttrType // nil: success expected
	}{
		{"ICE PRIORITY", []attr{{stun.AttrPriority, make([]byte, 4)}}, []stun.AttrType{stun.AttrPriority}},
		{"two, one repeated", []attr{{0x7ffe, nil}, {stun.AttrRequestedTransport, make([]byte, 4)}, {0x7ffe, nil}},
			[]stun.AttrType{0x7ffe, stun.AttrRequestedTransport}},
		{"unknown optional is ignored", []attr{{0xc001, []byte("x")}}, nil},
		{"known RFC 8489 attributes", []attr{{stun.AttrUsername, []byte("u")}, {stun.AttrRealm, []byte("r")}, {stun.AttrNonce, []byte("n")}}, nil},
		{"integrity of the right size is not checked", []attr{{stun.AttrUsername, []byte("u")}, {stun.AttrMessageIntegrity, make([]byte, 20)}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := stun.NewTransactionID()
			m, _ := exchange(t, c, to, request(stun.BindingRequest, id, true, tc.attrs...))
			if tc.unknown == nil {
				checkSuccess(t, m, id, udpLocal(c))
				return
			}
			checkError(t, m, id, stun.CodeUnknownAttribute, tc.unknown...)
		})
	}
}

func TestOtherMethods(t *testing.T) {
	allocate := stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}
	send := stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}

	t.Run("without handler", func(t *testing.T) {
		s := startServer(t, Config{UDP: loop4, UDPSockets: 1})
		to := endpoint(t, s, "udp", RolePrimary)
		c := udpClient(t, ip1)
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, to, request(allocate, id, true, attr{stun.AttrRequestedTransport, []byte{17, 0, 0, 0}}))
		checkError(t, m, id, stun.CodeBadRequest)
		if m.Type.Method != stun.MethodAllocate {
			t.Errorf("error response method %v, want Allocate", m.Type.Method)
		}
	})

	t.Run("with handler", func(t *testing.T) {
		type call struct {
			typ     stun.Type
			from    netip.AddrPort
			network string
		}
		calls := make(chan call, 10)
		h := HandlerFunc(func(out []byte, req *Request) []byte {
			calls <- call{req.Msg.Type, req.From, req.Network}
			if req.Msg.Type.Class != stun.ClassRequest {
				return nil
			}
			out = stun.AppendHeader(out, stun.Type{Method: req.Msg.Type.Method, Class: stun.ClassSuccess}, req.Msg.TransactionID)
			return stun.AppendFingerprint(out)
		})
		s := startServer(t, Config{UDP: loop4, TCP: loop4, UDPSockets: 1, Handler: h})
		c := udpClient(t, ip1)
		to := endpoint(t, s, "udp", RolePrimary)
		c.WriteToUDPAddrPort(request(send, stun.NewTransactionID(), true), to)
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, to, request(allocate, id, true))
		if m.Type != (stun.Type{Method: stun.MethodAllocate, Class: stun.ClassSuccess}) || m.TransactionID != id {
			t.Errorf("handler's response: %v %x", m.Type, m.TransactionID)
		}
		for _, want := range []call{{send, udpLocal(c), "udp"}, {allocate, udpLocal(c), "udp"}} {
			if got := <-calls; got != want {
				t.Errorf("handler got %+v, want %+v", got, want)
			}
		}
		// Binding stays the server's own, and TCP reaches the handler too.
		id = stun.NewTransactionID()
		m, _ = exchange(t, c, to, request(stun.BindingRequest, id, true))
		checkSuccess(t, m, id, udpLocal(c))
		tc, err := net.Dial("tcp", endpoint(t, s, "tcp", RolePrimary).String())
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		id = stun.NewTransactionID()
		if m := streamExchange(t, tc, request(allocate, id, true)); m.TransactionID != id {
			t.Errorf("TCP handler response id %x", m.TransactionID)
		}
		if got := <-calls; got.network != "tcp" || got.from != localAddr(tc) {
			t.Errorf("TCP call %+v", got)
		}
		if st := s.Stats(); st.Delegated != 3 {
			t.Errorf("Delegated = %d, want 3", st.Delegated)
		}
	})
}

// TestNotAnswered sends messages the server must ignore, each followed by
// a Binding request on the same socket: UDP from one client socket reaches
// one server socket in order, so the first reply must be the sentinel's.
func TestNotAnswered(t *testing.T) {
	s := startServer(t, Config{UDP: loop4, UDPSockets: 2})
	to := endpoint(t, s, "udp", RolePrimary)
	c := udpClient(t, ip1)
	withBadFP := request(stun.BindingRequest, stun.NewTransactionID(), true)
	withBadFP[len(withBadFP)-1] ^= 1
	cases := []struct {
		name      string
		pkt       []byte
		malformed bool
	}{
		{"Binding indication", request(stun.BindingIndication, stun.NewTransactionID(), true), false},
		{"Binding success response", request(stun.BindingSuccess, stun.NewTransactionID(), true), false},
		{"Binding error response", request(stun.BindingError, stun.NewTransactionID(), false), false},
		{"Send indication without handler", request(stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}, stun.NewTransactionID(), false), false},
		{"wrong FINGERPRINT", withBadFP, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats()
			if _, err := c.WriteToUDPAddrPort(tc.pkt, to); err != nil {
				t.Fatal(err)
			}
			id := stun.NewTransactionID()
			m, _ := exchange(t, c, to, request(stun.BindingRequest, id, true))
			checkSuccess(t, m, id, udpLocal(c))
			after := s.Stats()
			if tc.malformed && after.Malformed != before.Malformed+1 {
				t.Errorf("Malformed went from %d to %d", before.Malformed, after.Malformed)
			}
			if !tc.malformed && after.Dropped != before.Dropped+1 {
				t.Errorf("Dropped went from %d to %d", before.Dropped, after.Dropped)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("close twice, concurrently", func(t *testing.T) {
		s := startServer(t, Config{UDP: loop4, TCP: loop4, UDPSockets: 2})
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		s.Close()
		<-done
		if err := s.Close(); err != nil {
			t.Errorf("third Close: %v", err)
		}
	})
	t.Run("serve after cancel", func(t *testing.T) {
		before := countGoroutines()
		s, err := Listen(Config{UDP: loop4, TCP: loop4})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve with a cancelled context: %v", err)
			}
		case <-time.After(ioWait):
			t.Fatal("Serve with a cancelled context did not return")
		}
		if err := s.Serve(context.Background()); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after it stopped: %v, want ErrServerClosed", err)
		}
		checkGoroutines(t, before)
	})
	t.Run("close without serve", func(t *testing.T) {
		before := countGoroutines()
		s, err := Listen(Config{UDP: loop4, TCP: loop4, UDPSockets: 3})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := s.Serve(context.Background()); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after Close: %v, want ErrServerClosed", err)
		}
		checkGoroutines(t, before)
	})
	t.Run("serve twice", func(t *testing.T) {
		s := startServer(t, Config{UDP: loop4})
		// A response proves the first Serve is running.
		c := udpClient(t, ip1)
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, endpoint(t, s, "udp", RolePrimary), request(stun.BindingRequest, id, false))
		checkSuccess(t, m, id, udpLocal(c))
		if err := s.Serve(context.Background()); !errors.Is(err, errServing) {
			t.Fatalf("second Serve: %v, want errServing", err)
		}
	})
	t.Run("cancel stops a running server", func(t *testing.T) {
		before := countGoroutines()
		s, err := Listen(Config{UDP: loop4, TCP: loop4, UDPSockets: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		// Hold a TCP connection open across the cancel.
		c, err := net.Dial("tcp", endpoint(t, s, "tcp", RolePrimary).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		id := stun.NewTransactionID()
		checkSuccess(t, streamExchange(t, c, request(stun.BindingRequest, id, true)), id, localAddr(c))
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(ioWait):
			t.Fatal("Serve did not return after cancel")
		}
		waitClosed(t, c)
		checkGoroutines(t, before)
	})
}

func TestListenReportsPortsInUse(t *testing.T) {
	s := startServer(t, Config{UDP: loop4, TCP: loop4, UDPSockets: 2})
	taken := endpoint(t, s, "udp", RolePrimary)
	if _, err := Listen(Config{UDP: taken, UDPSockets: 2}); err == nil {
		t.Error("second server on the same UDP port started")
	}
	if _, err := Listen(Config{TCP: endpoint(t, s, "tcp", RolePrimary)}); err == nil {
		t.Error("second server on the same TCP port started")
	}
}

func TestConfigValidate(t *testing.T) {
	srvTLS, _ := selfSignedTLS(t)
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // "" means valid
	}{
		{"udp only", Config{UDP: loop4}, ""},
		{"nothing enabled", Config{}, "UDP"},
		{"port without IP", Config{UDP: netip.AddrPortFrom(netip.Addr{}, 3478)}, "UDP"},
		{"tls without config", Config{TLS: loop4}, "TLSConfig"},
		{"tls without certificate", Config{TLS: loop4, TLSConfig: &tls.Config{}}, "TLSConfig"},
		{"tls", Config{TLS: loop4, TLSConfig: srvTLS}, ""},
		{"tls on the tcp port", Config{TCP: netip.MustParseAddrPort("127.0.0.1:3478"), TLS: netip.MustParseAddrPort("127.0.0.1:3478"), TLSConfig: srvTLS}, "TLS"},
		{"rfc5780", Config{UDP: loop4, AlternateIP: ip2}, ""},
		{"rfc5780 mapped addresses", Config{UDP: netip.MustParseAddrPort("[::ffff:127.0.0.1]:0"), AlternateIP: netip.MustParseAddr("::ffff:127.0.0.2")}, ""},
		{"rfc5780 without udp", Config{TCP: loop4, AlternateIP: ip2}, "AlternateIP"},
		{"rfc5780 on wildcard", Config{UDP: netip.MustParseAddrPort("0.0.0.0:0"), AlternateIP: ip2}, "UDP"},
		{"rfc5780 mixed families", Config{UDP: loop4, AlternateIP: netip.MustParseAddr("::1")}, "AlternateIP"},
		{"rfc5780 same IP", Config{UDP: loop4, AlternateIP: ip1}, "AlternateIP"},
		{"rfc5780 same port", Config{UDP: netip.MustParseAddrPort("127.0.0.1:3478"), AlternateIP: ip2, AlternatePort: 3478}, "AlternatePort"},
		{"alternate port alone", Config{UDP: loop4, AlternatePort: 3479}, "AlternatePort"},
		{"software too long", Config{UDP: loop4, Software: strings.Repeat("x", 128)}, "Software"},
		{"software not UTF-8", Config{UDP: loop4, Software: "\xff"}, "Software"},
		{"negative sockets", Config{UDP: loop4, UDPSockets: -1}, "UDPSockets"},
		{"negative timeout", Config{UDP: loop4, TCPIdleTimeout: -time.Second}, "TCPIdleTimeout"},
		{"negative conns", Config{UDP: loop4, MaxTCPConns: -1}, "MaxTCPConns"},
		{"multicast", Config{UDP: netip.MustParseAddrPort("224.0.0.1:3478")}, "UDP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("Validate = %v, want a ConfigError for %s", err, tc.field)
			}
			if _, lerr := Listen(tc.cfg); lerr == nil {
				t.Error("Listen accepted an invalid config")
			}
		})
	}
}

func TestStatsCountsSendsPerSocket(t *testing.T) {
	// Many client sockets spread over the SO_REUSEPORT group; the totals
	// add up whichever socket served them.
	s := startServer(t, Config{UDP: loop4, UDPSockets: 4})
	to := endpoint(t, s, "udp", RolePrimary)
	const clients = 16
	for range clients {
		c := udpClient(t, ip1)
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, to, request(stun.BindingRequest, id, false))
		checkSuccess(t, m, id, udpLocal(c))
	}
	if st := s.Stats(); st.Requests != clients || st.Responses != clients {
		t.Errorf("Stats = %+v, want %d requests and responses", st, clients)
	}
}

// TestPlainUDPPath reruns UDP tests with one datagram per system call
// instead of recvmmsg/sendmmsg batches: both paths are kept.
func TestPlainUDPPath(t *testing.T) {
	defer func(b bool) { udpBatch = b }(udpBatch)
	udpBatch = false
	t.Run("binding", TestUDPBinding)
	t.Run("change request", TestChangeRequest)
	t.Run("flood", TestBadInputFlood)
}
