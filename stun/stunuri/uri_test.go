package stunuri

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      URI
		str       string // String(), when it differs from in
		port      uint16 // PortOrDefault
		transport Transport
		secure    bool
	}{
		// The examples of RFC 7064 and RFC 7065.
		{in: "stun:example.org", want: URI{Scheme: STUN, Host: "example.org"}, port: 3478, transport: UDP},
		{in: "stuns:example.org", want: URI{Scheme: STUNS, Host: "example.org"}, port: 5349, transport: TCP, secure: true},
		{in: "stun:example.org:8000", want: URI{Scheme: STUN, Host: "example.org", Port: 8000}, port: 8000, transport: UDP},
		{in: "turn:example.org", want: URI{Scheme: TURN, Host: "example.org"}, port: 3478, transport: UDP},
		{in: "turns:example.org", want: URI{Scheme: TURNS, Host: "example.org"}, port: 5349, transport: TCP, secure: true},
		{in: "turn:example.org:8000", want: URI{Scheme: TURN, Host: "example.org", Port: 8000}, port: 8000, transport: UDP},
		{in: "turn:example.org?transport=udp", want: URI{Scheme: TURN, Host: "example.org", Transport: UDP}, port: 3478, transport: UDP},
		{in: "turn:example.org?transport=tcp", want: URI{Scheme: TURN, Host: "example.org", Transport: TCP}, port: 3478, transport: TCP},
		{in: "turns:example.org?transport=tcp", want: URI{Scheme: TURNS, Host: "example.org", Transport: TCP}, port: 5349, transport: TCP, secure: true},
		// Addresses.
		{in: "stun:192.0.2.1:19302", want: URI{Scheme: STUN, Host: "192.0.2.1", Port: 19302}, port: 19302, transport: UDP},
		{in: "turn:[::1]:3478", want: URI{Scheme: TURN, Host: "::1", Port: 3478}, port: 3478, transport: UDP},
		{in: "turn:[2001:db8::1]?transport=tcp", want: URI{Scheme: TURN, Host: "2001:db8::1", Transport: TCP}, port: 3478, transport: TCP},
		{in: "turns:[2001:db8::1]:443", want: URI{Scheme: TURNS, Host: "2001:db8::1", Port: 443}, port: 443, transport: TCP, secure: true},
		{in: "stun:[fe80::1%25eth0]:3478", want: URI{Scheme: STUN, Host: "fe80::1%eth0", Port: 3478}, port: 3478, transport: UDP},
		{in: "stun:[fe80::1%eth0]", want: URI{Scheme: STUN, Host: "fe80::1%eth0"}, str: "stun:[fe80::1%25eth0]", port: 3478, transport: UDP},
		// Case-insensitive scheme and parameter.
		{in: "TURN:Example.ORG?Transport=TCP", want: URI{Scheme: TURN, Host: "Example.ORG", Transport: TCP}, str: "turn:Example.ORG?transport=tcp", port: 3478, transport: TCP},
		{in: "turn:turn_1.example-net.org:03478", want: URI{Scheme: TURN, Host: "turn_1.example-net.org", Port: 3478}, str: "turn:turn_1.example-net.org:3478", port: 3478, transport: UDP},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if u != tc.want {
				t.Fatalf("got %+v, want %+v", u, tc.want)
			}
			str := tc.str
			if str == "" {
				str = tc.in
			}
			if u.String() != str {
				t.Errorf("String() = %q, want %q", u.String(), str)
			}
			if u.PortOrDefault() != tc.port || u.TransportOrDefault() != tc.transport || u.Secure() != tc.secure {
				t.Errorf("port %d transport %s secure %v, want %d %s %v",
					u.PortOrDefault(), u.TransportOrDefault(), u.Secure(), tc.port, tc.transport, tc.secure)
			}
			if err := u.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, msg     string
		unsupported bool
	}{
		{in: "", msg: "want stun:"},
		{in: "example.org", msg: "want stun:"},
		{in: "http://example.org", msg: "scheme must be"},
		{in: "turn://example.org", msg: "no //"},
		{in: "turn:", msg: "no host"},
		{in: "turn::3478", msg: "no host"},
		{in: "turn:user@example.org", msg: "userinfo"},
		{in: "turn:example.org:", msg: "bad port"},
		{in: "turn:example.org:0", msg: "bad port"},
		{in: "turn:example.org:65536", msg: "bad port"},
		{in: "turn:example.org:+80", msg: "bad port"},
		{in: "turn:example.org:http", msg: "bad port"},
		{in: "turn:example.org/path", msg: "invalid character"},
		{in: "turn:exa%41mple.org", msg: "invalid character"},
		{in: "turn:example.org#frag", msg: "fragment"},
		{in: "turn:::1", msg: "must be in brackets"},
		{in: "turn:2001:db8::1:3478", msg: "must be in brackets"},
		{in: "turn:[::1", msg: "no ]"},
		{in: "turn:[::1]x", msg: "unexpected"},
		{in: "turn:[192.0.2.1]", msg: "bad IPv6"},
		{in: "turn:[example.org]", msg: "bad IPv6"},
		{in: "turn:[fe80::1%25]", msg: ""}, // the zone "25", leniently
		{in: "turn:[fe80::1%25a%2F]", msg: "bad zone"},
		{in: "turn:[fe80::1%]", msg: "bad"},
		{in: "turn:999.1.1.1", msg: "bad IPv4"},
		{in: "turn:1.2.3", msg: "bad IPv4"},
		{in: "stun:example.org?transport=udp", msg: "no parameters"},
		{in: "stuns:example.org?transport=tcp", msg: "no parameters"},
		{in: "turn:example.org?", msg: "empty query"},
		{in: "turn:example.org?foo=bar", msg: "unknown parameter \"foo\""},
		{in: "turn:example.org?transport=udp&foo=bar", msg: "more than one parameter"},
		{in: "turn:example.org?transport", msg: "bad transport"},
		{in: "turn:example.org?transport=", msg: "bad transport"},
		{in: "turn:example.org?transport=u%64p", msg: "bad transport"},
		{in: "turn:example.org?transport=sctp", msg: "transport \"sctp\"", unsupported: true},
		{in: "turn:example.org?tran\u017fport=udp", msg: "unknown parameter"}, // no Unicode folding
		{in: "\u017ftun:example.org", msg: "scheme must be"},
		{in: "turns:example.org?transport=udp", msg: "DTLS", unsupported: true},
		{in: "turn:" + strings.Repeat("a", 254), msg: "exceeds 253"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := Parse(tc.in)
			if tc.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v", u)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v", err, !tc.unsupported)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		u    URI
		want string
	}{
		{URI{Scheme: TURN, Host: "::1", Port: 3478}, "turn:[::1]:3478"},
		{URI{Scheme: TURNS, Host: "turn.example.org", Transport: TCP}, "turns:turn.example.org?transport=tcp"},
		{FromAddrPort(STUN, netip.MustParseAddrPort("[::ffff:192.0.2.1]:3478")), "stun:192.0.2.1:3478"},
		{FromAddrPort(TURN, netip.MustParseAddrPort("[2001:db8::2]:5000")), "turn:[2001:db8::2]:5000"},
		{FromAddrPort(STUN, netip.MustParseAddrPort("[fe80::1%eth0]:1")), "stun:[fe80::1%25eth0]:1"},
	} {
		if got := tc.u.String(); got != tc.want {
			t.Errorf("%+v: String() = %q, want %q", tc.u, got, tc.want)
		}
		if back, err := Parse(tc.want); err != nil || back != tc.u {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.want, back, err, tc.u)
		}
	}
	for _, u := range []URI{
		{},
		{Scheme: TURN},
		{Scheme: 9, Host: "h"},
		{Scheme: STUN, Host: "h", Transport: UDP},
		{Scheme: TURN, Host: "h", Transport: 7},
		{Scheme: TURNS, Host: "h", Transport: UDP},
		{Scheme: TURN, Host: "a b"},
		{Scheme: TURN, Host: "::1%"},
		{Scheme: TURN, Host: "1.2.3.4%eth0"},
	} {
		if err := u.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", u)
		}
		if _, err := u.MarshalText(); err == nil {
			t.Errorf("%+v: MarshalText accepted it", u)
		}
	}
}

func TestAccessors(t *testing.T) {
	u := MustParse("turns:[2001:db8::1]")
	if got, want := u.AddrPort(), netip.MustParseAddrPort("[2001:db8::1]:5349"); got != want {
		t.Errorf("AddrPort() = %v, want %v", got, want)
	}
	if got := u.HostPort(); got != "[2001:db8::1]:5349" {
		t.Errorf("HostPort() = %q", got)
	}
	if u.Network() != "tcp" || !u.IsTURN() {
		t.Errorf("Network() = %q, IsTURN() = %v", u.Network(), u.IsTURN())
	}
	n := MustParse("stun:stun.example.org:19302")
	if n.Addr().IsValid() || n.AddrPort().IsValid() {
		t.Errorf("a name gave an address: %v %v", n.Addr(), n.AddrPort())
	}
	if n.HostPort() != "stun.example.org:19302" || n.Network() != "udp" || n.IsTURN() {
		t.Errorf("HostPort() = %q, Network() = %q, IsTURN() = %v", n.HostPort(), n.Network(), n.IsTURN())
	}
	if a := MustParse("stun:[::ffff:192.0.2.1]").Addr(); a != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("mapped address not unmapped: %v", a)
	}
}

func TestText(t *testing.T) {
	type server struct {
		URLs []URI `json:"urls"`
	}
	in := `{"urls":["stun:192.0.2.1","turn:[::1]:3478?transport=tcp","turns:example.org"]}`
	var s server
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(s)
	if err != nil || string(out) != in {
		t.Fatalf("round trip: %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"urls":["turn:?"]}`), &s); err == nil {
		t.Fatal("bad URI accepted")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	MustParse("turn:")
}
