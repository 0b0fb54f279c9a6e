package stunserver

import (
	"net"
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

// needIP2 skips the test where 127.0.0.2 is not a local address (Linux
// routes all of 127/8 to lo; macOS does not).
func needIP2(t *testing.T) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip2, 0)))
	if err != nil {
		t.Skipf("127.0.0.2 is not local here: %v", err)
	}
	c.Close()
}

// start5780 serves RFC 5780 with IP1 = 127.0.0.1 and IP2 = 127.0.0.2 and
// returns the server and its four UDP addresses by role.
func start5780(t *testing.T, cfg Config) (*Server, [4]netip.AddrPort) {
	t.Helper()
	needIP2(t)
	cfg.UDP, cfg.AlternateIP = loop4, ip2
	s := startServer(t, cfg)
	var addrs [4]netip.AddrPort
	for r := rolePrimary; r <= roleAltBoth; r++ {
		addrs[r] = endpoint(t, s, "udp", r.String())
	}
	return s, addrs
}

func TestRFC5780Addresses(t *testing.T) {
	_, a := start5780(t, Config{UDPSockets: 2})
	p1, p2 := a[rolePrimary].Port(), a[roleAltPort].Port()
	want := [4]netip.AddrPort{
		netip.AddrPortFrom(ip1, p1), netip.AddrPortFrom(ip1, p2),
		netip.AddrPortFrom(ip2, p1), netip.AddrPortFrom(ip2, p2),
	}
	if a != want {
		t.Errorf("UDP endpoints %v, want %v", a, want)
	}
	if p2 != p1+1 {
		t.Errorf("alternate port %d, want P1+1 = %d", p2, p1+1)
	}
}

// TestChangeRequest sends, to each of the four addresses, a Binding
// request with each CHANGE-REQUEST combination, and checks RFC 5780,
// Section 6.1, Table 1: the source of the response, RESPONSE-ORIGIN,
// OTHER-ADDRESS, and both mapped addresses.
func TestChangeRequest(t *testing.T) {
	_, a := start5780(t, Config{UDPSockets: 2, Software: "icebreaker"})
	c := udpClient(t, ip1)
	me := udpLocal(c)
	for dst := rolePrimary; dst <= roleAltBoth; dst++ {
		for _, ch := range []struct {
			name  string
			flags uint32
			flip  role
			omit  bool // no CHANGE-REQUEST at all
		}{
			{"absent", 0, 0, true},
			{"none", 0, 0, false},
			{"change IP", changeIPFlag, roleAltIP, false},
			{"change port", changePortFlag, roleAltPort, false},
			{"change both", changeIPFlag | changePortFlag, roleAltBoth, false},
		} {
			t.Run(dst.String()+"/"+ch.name, func(t *testing.T) {
				id := stun.NewTransactionID()
				var attrs []attr
				if !ch.omit {
					attrs = append(attrs, changeRequest(ch.flags))
				}
				m, from := exchange(t, c, a[dst], request(stun.BindingRequest, id, true, attrs...))
				checkSuccess(t, m, id, me)
				wantFrom := a[dst^ch.flip]
				if from != wantFrom {
					t.Errorf("response from %v, want %v", from, wantFrom)
				}
				if got, err := m.Address(stun.AttrResponseOrigin); err != nil || got != wantFrom {
					t.Errorf("RESPONSE-ORIGIN = %v, %v; want %v", got, err, wantFrom)
				}
				if got, err := m.Address(stun.AttrOtherAddress); err != nil || got != a[dst^roleAltBoth] {
					t.Errorf("OTHER-ADDRESS = %v, %v; want %v", got, err, a[dst^roleAltBoth])
				}
				if got, err := m.MappedAddress(); err != nil || got != me {
					t.Errorf("MAPPED-ADDRESS = %v, %v; want %v", got, err, me)
				}
			})
		}
	}
}

func TestResponsePort(t *testing.T) {
	_, a := start5780(t, Config{UDPSockets: 1})
	sender, receiver := udpClient(t, ip1), udpClient(t, ip1)
	id := stun.NewTransactionID()
	req := request(stun.BindingRequest, id, true, responsePort(udpLocal(receiver).Port()), changeRequest(changePortFlag))
	if _, err := sender.WriteToUDPAddrPort(req, a[rolePrimary]); err != nil {
		t.Fatal(err)
	}
	m, from := readMsg(t, receiver)
	// XOR-MAPPED-ADDRESS names the sender: the port the request came from.
	checkSuccess(t, m, id, udpLocal(sender))
	if from != a[roleAltPort] {
		t.Errorf("response from %v, want %v", from, a[roleAltPort])
	}
}

func TestPadding(t *testing.T) {
	_, a := start5780(t, Config{UDPSockets: 1})
	c := udpClient(t, ip1)
	for _, n := range []int{1, 4, 1500, 3000} {
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, a[rolePrimary], request(stun.BindingRequest, id, true, attr{stun.AttrPadding, make([]byte, n)}))
		checkSuccess(t, m, id, udpLocal(c))
		if v, ok := m.Get(stun.AttrPadding); !ok || len(v) != n {
			t.Errorf("request PADDING %d: response PADDING %d bytes (present %v)", n, len(v), ok)
		}
	}
}

func TestRFC5780Errors(t *testing.T) {
	t.Run("with alternate address", func(t *testing.T) {
		s, a := start5780(t, Config{UDPSockets: 1, TCP: loop4})
		c := udpClient(t, ip1)
		for _, tc := range []struct {
			name    string
			attrs   []attr
			code    int
			unknown []stun.AttrType
		}{
			{"PADDING with RESPONSE-PORT", []attr{{stun.AttrPadding, make([]byte, 8)}, responsePort(9)}, stun.CodeBadRequest, nil},
			{"RESPONSE-PORT 0", []attr{responsePort(0)}, stun.CodeBadRequest, nil},
			{"short RESPONSE-PORT", []attr{{stun.AttrResponsePort, []byte{1, 2}}}, stun.CodeBadRequest, nil},
			{"long CHANGE-REQUEST", []attr{{stun.AttrChangeRequest, make([]byte, 8)}}, stun.CodeBadRequest, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := stun.NewTransactionID()
				m, from := exchange(t, c, a[rolePrimary], request(stun.BindingRequest, id, true, tc.attrs...))
				checkError(t, m, id, tc.code, tc.unknown...)
				if from != a[rolePrimary] {
					t.Errorf("error response from %v, want the receiving socket %v", from, a[rolePrimary])
				}
			})
		}
		// Over TCP, CHANGE-REQUEST with a flag and RESPONSE-PORT cannot be
		// honoured; RESPONSE-ORIGIN is the connection's local address and
		// there is no OTHER-ADDRESS.
		tc, err := net.Dial("tcp", endpoint(t, s, "tcp", RolePrimary).String())
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		id := stun.NewTransactionID()
		m := streamExchange(t, tc, request(stun.BindingRequest, id, true, changeRequest(changeIPFlag)))
		checkError(t, m, id, stun.CodeUnknownAttribute, stun.AttrChangeRequest)
		id = stun.NewTransactionID()
		m = streamExchange(t, tc, request(stun.BindingRequest, id, true, responsePort(9)))
		checkError(t, m, id, stun.CodeUnknownAttribute, stun.AttrResponsePort)
		id = stun.NewTransactionID()
		m = streamExchange(t, tc, request(stun.BindingRequest, id, true))
		checkSuccess(t, m, id, localAddr(tc))
		if got, _ := m.Address(stun.AttrResponseOrigin); got != netx.AddrPort(tc.RemoteAddr()) {
			t.Errorf("TCP RESPONSE-ORIGIN = %v, want %v", got, tc.RemoteAddr())
		}
		if m.Has(stun.AttrOtherAddress) {
			t.Error("TCP response has OTHER-ADDRESS")
		}
	})

	t.Run("without alternate address", func(t *testing.T) {
		// RFC 5780, Section 6: 420 for CHANGE-REQUEST; PADDING and
		// RESPONSE-PORT still work (Section 5).
		s := startServer(t, Config{UDP: loop4, UDPSockets: 1})
		to := endpoint(t, s, "udp", RolePrimary)
		c := udpClient(t, ip1)
		for _, flags := range []uint32{changeIPFlag, changePortFlag, changeIPFlag | changePortFlag} {
			id := stun.NewTransactionID()
			m, _ := exchange(t, c, to, request(stun.BindingRequest, id, true, changeRequest(flags)))
			checkError(t, m, id, stun.CodeUnknownAttribute, stun.AttrChangeRequest)
		}
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, to, request(stun.BindingRequest, id, true, changeRequest(0), attr{stun.AttrPadding, make([]byte, 100)}))
		checkSuccess(t, m, id, udpLocal(c))
		if v, _ := m.Get(stun.AttrPadding); len(v) != 100 {
			t.Errorf("PADDING %d bytes, want 100", len(v))
		}
		receiver := udpClient(t, ip1)
		id = stun.NewTransactionID()
		c.WriteToUDPAddrPort(request(stun.BindingRequest, id, true, responsePort(udpLocal(receiver).Port())), to)
		m, _ = readMsg(t, receiver)
		checkSuccess(t, m, id, udpLocal(c))
		for _, a := range []stun.AttrType{stun.AttrOtherAddress, stun.AttrResponseOrigin, stun.AttrMappedAddress} {
			if m.Has(a) {
				t.Errorf("response without RFC 5780 has %s", a)
			}
		}
	})
}

func TestClassicRFC5780(t *testing.T) {
	_, a := start5780(t, Config{UDPSockets: 1})
	c := udpClient(t, ip1)
	id := stun.NewTransactionID()
	m, from := exchange(t, c, a[rolePrimary], classicRequest(0x5a5a5a5a, id, changeRequest(changeIPFlag|changePortFlag)))
	if !m.Classic || m.Type != stun.BindingSuccess || m.TransactionID != id {
		t.Fatalf("classic response %v classic=%v", m.Type, m.Classic)
	}
	if from != a[roleAltBoth] {
		t.Errorf("response from %v, want %v", from, a[roleAltBoth])
	}
	if got, _ := m.Address(attrSourceAddress); got != a[roleAltBoth] {
		t.Errorf("SOURCE-ADDRESS = %v, want %v", got, a[roleAltBoth])
	}
	if got, _ := m.Address(attrChangedAddress); got != a[roleAltBoth] {
		t.Errorf("CHANGED-ADDRESS = %v, want %v", got, a[roleAltBoth])
	}
	if got, _ := m.MappedAddress(); got != udpLocal(c) {
		t.Errorf("MAPPED-ADDRESS = %v, want %v", got, udpLocal(c))
	}
}
