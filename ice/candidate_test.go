package ice

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Real-world candidate lines: Chrome (lower-case transport, generation,
// ufrag, network-id, network-cost, mDNS hosts, TCP active on port 9),
// Firefox (upper-case transport), pion, and the RFC 8839 examples.
var realLines = []string{
	"candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.5 rport 61665 generation 0 ufrag sEMT network-id 1 network-cost 10",
	"candidate:1467250027 1 udp 2122260223 1c2f7e49-7b5a-4a3e-9c1a-3f4c1d2b7a10.local 46243 typ host generation 0 ufrag sEMT network-id 1",
	"candidate:1853887674 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active generation 0 ufrag sEMT network-id 1",
	"candidate:3 1 udp 2122194687 2001:db8::1 50000 typ host generation 0 ufrag sEMT network-id 2 network-cost 50",
	"candidate:2157334355 1 udp 33562367 203.0.113.5 54321 typ relay raddr 198.51.100.7 rport 50000 generation 0 ufrag sEMT network-id 1 network-cost 10",
	"a=candidate:0 1 UDP 2122252543 192.168.1.2 56107 typ host",
	"a=candidate:4 1 UDP 8265727 203.0.113.5 54321 typ relay raddr 198.51.100.7 rport 50000",
	"a=candidate:1 1 TCP 2105524479 192.168.1.2 9 typ host tcptype active",
	"candidate:1966762134 1 udp 2130706431 10.0.0.1 53987 typ host",
	"candidate:233762139 1 udp 1694498815 198.51.100.7 53987 typ srflx raddr 0.0.0.0 rport 53987",
	"a=candidate:1 1 UDP 2130706431 203.0.113.141 8998 typ host",
	"a=candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998",
	"candidate:2 1 TCP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998 tcptype passive",
	"candidate:5 2 UDP 1694498814 192.0.2.3 45665 typ prflx raddr 203.0.113.141 rport 8999",
	"candidate:a+b/c 256 TCP 0 ::ffff:192.0.2.1 0 typ host tcptype so",
}

// canonical is how AppendTo writes a line: the "candidate:" prefix, no "a=",
// and the transport in upper case.
func canonical(s string) string {
	s = strings.TrimPrefix(s, "a=")
	s = strings.Replace(s, " udp ", " UDP ", 1)
	return strings.Replace(s, " tcp ", " TCP ", 1)
}

func TestParseCandidateRoundTrip(t *testing.T) {
	for _, line := range realLines {
		t.Run(line, func(t *testing.T) {
			c, err := ParseCandidate(line)
			if err != nil {
				t.Fatalf("ParseCandidate: %v", err)
			}
			if got, want := c.String(), canonical(line); got != want {
				t.Fatalf("String:\n got %s\nwant %s", got, want)
			}
			c2, err := ParseCandidate(c.String())
			if err != nil {
				t.Fatalf("reparse: %v", err)
			}
			if !c.Equal(&c2) {
				t.Fatalf("reparse differs:\n%+v\n%+v", c, c2)
			}
			// Without any prefix it parses the same.
			bare := strings.TrimPrefix(strings.TrimPrefix(line, "a="), "candidate:")
			c3, err := ParseCandidate(bare + "\r\n")
			if err != nil || !c.Equal(&c3) {
				t.Fatalf("bare form: %v, %+v", err, c3)
			}
		})
	}
}

func TestParseCandidateFields(t *testing.T) {
	c, err := ParseCandidate(realLines[0])
	if err != nil {
		t.Fatal(err)
	}
	want := Candidate{
		Foundation: "842163049", Component: 1, Transport: TransportUDP, Priority: 1677729535,
		Addr: netip.MustParseAddrPort("198.51.100.7:61665"), Type: TypeServerReflexive,
		Related:    netip.MustParseAddrPort("10.0.0.5:61665"),
		Extensions: []Ext{{"generation", "0"}, {"ufrag", "sEMT"}, {"network-id", "1"}, {"network-cost", "10"}},
	}
	if !c.Equal(&want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if v, ok := c.Extension("network-cost"); !ok || v != "10" {
		t.Fatalf("Extension(network-cost) = %q, %v", v, ok)
	}
	if _, ok := c.Extension("nope"); ok {
		t.Fatal("Extension(nope) found")
	}
	if got := c.BaseAddr(); got != c.Related {
		t.Fatalf("BaseAddr of srflx = %v, want raddr %v", got, c.Related)
	}

	m, err := ParseCandidate(realLines[1])
	if err != nil {
		t.Fatal(err)
	}
	if m.Host != "1c2f7e49-7b5a-4a3e-9c1a-3f4c1d2b7a10.local" || m.Addr.Addr().IsValid() || m.Addr.Port() != 46243 {
		t.Fatalf("mDNS candidate: Host %q Addr %v", m.Host, m.Addr)
	}

	tc, err := ParseCandidate(realLines[12])
	if err != nil {
		t.Fatal(err)
	}
	if tc.Transport != TransportTCP || tc.TCPType != TCPTypePassive || len(tc.Extensions) != 0 {
		t.Fatalf("tcp candidate: %+v", tc)
	}

	// tcptype, raddr and rport are recognised anywhere and written back in
	// their canonical place.
	o, err := ParseCandidate("1 1 tcp 5 192.0.2.1 9 typ srflx tcptype active generation 0 rport 7 raddr h.local")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o.String(), "candidate:1 1 TCP 5 192.0.2.1 9 typ srflx raddr h.local rport 7 tcptype active generation 0"; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	// raddr without rport: port 0.
	r, err := ParseCandidate("1 1 udp 5 192.0.2.1 9 typ srflx raddr 10.0.0.1")
	if err != nil || r.Related != netip.MustParseAddrPort("10.0.0.1:0") {
		t.Fatalf("raddr without rport: %v %v", r.Related, err)
	}
}

func TestParseCandidateErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
		unsupported    bool
	}{
		{"empty", "", "empty", false},
		{"only prefix", "a=candidate:", "empty", false},
		{"long foundation", strings.Repeat("a", 33) + " 1 udp 1 192.0.2.1 1 typ host", "foundation", false},
		{"bad foundation char", "a-b 1 udp 1 192.0.2.1 1 typ host", "foundation", false},
		{"missing component", "1", "missing component", false},
		{"component 0", "1 0 udp 1 192.0.2.1 1 typ host", "component", false},
		{"component 257", "1 257 udp 1 192.0.2.1 1 typ host", "component", false},
		{"component sign", "1 +1 udp 1 192.0.2.1 1 typ host", "component", false},
		{"unknown transport", "1 1 sctp 1 192.0.2.1 1 typ host", "transport", true},
		{"bad transport", "1 1 ud\"p 1 192.0.2.1 1 typ host", "transport", false},
		{"priority overflow", "1 1 udp 4294967296 192.0.2.1 1 typ host", "priority", false},
		{"priority 11 digits", "1 1 udp 00000000001 192.0.2.1 1 typ host", "priority", false},
		{"priority negative", "1 1 udp -1 192.0.2.1 1 typ host", "priority", false},
		{"missing address", "1 1 udp 1", "connection address", false},
		{"missing port", "1 1 udp 1 192.0.2.1", "port", false},
		{"port overflow", "1 1 udp 1 192.0.2.1 65536 typ host", "port", false},
		{"bad ipv4", "1 1 udp 1 192.0.2.300 1 typ host", "connection address", false},
		{"zone", "1 1 udp 1 fe80::1%eth0 1 typ host", "zone", false},
		{"bad host", "1 1 udp 1 a..b 1 typ host", "connection address", false},
		{"missing typ", "1 1 udp 1 192.0.2.1 1", "typ", false},
		{"not typ", "1 1 udp 1 192.0.2.1 1 type host", "typ", false},
		{"missing type", "1 1 udp 1 192.0.2.1 1 typ", "candidate type", false},
		{"unknown type", "1 1 udp 1 192.0.2.1 1 typ foo", "candidate type", true},
		{"odd extension", "1 1 udp 1 192.0.2.1 1 typ host generation", "no value", false},
		{"bad ext name", "1 1 udp 1 192.0.2.1 1 typ host ge\"n 0", "extension name", false},
		{"bad ext value", "1 1 udp 1 192.0.2.1 1 typ host gen \x7f", "value", false},
		{"dup raddr", "1 1 udp 1 192.0.2.1 1 typ srflx raddr 10.0.0.1 raddr 10.0.0.1", "duplicate raddr", false},
		{"dup rport", "1 1 udp 1 192.0.2.1 1 typ srflx rport 1 rport 1", "duplicate rport", false},
		{"rport alone", "1 1 udp 1 192.0.2.1 1 typ srflx rport 1", "rport without raddr", false},
		{"bad raddr", "1 1 udp 1 192.0.2.1 1 typ srflx raddr x:y rport 1", "related address", false},
		{"tcptype on udp", "1 1 udp 1 192.0.2.1 1 typ host tcptype active", "tcptype", false},
		{"bad tcptype", "1 1 tcp 1 192.0.2.1 1 typ host tcptype both", "tcptype", false},
		{"dup tcptype", "1 1 tcp 1 192.0.2.1 1 typ host tcptype so tcptype so", "duplicate tcptype", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCandidate(tt.in)
			if err == nil {
				t.Fatalf("ParseCandidate(%q) succeeded", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			if errors.Is(err, ErrUnsupported) != tt.unsupported {
				t.Fatalf("errors.Is(ErrUnsupported) = %v, want %v (%v)", !tt.unsupported, tt.unsupported, err)
			}
		})
	}
}

func TestAppendToAppends(t *testing.T) {
	c, err := ParseCandidate(realLines[9])
	if err != nil {
		t.Fatal(err)
	}
	b := c.AppendTo([]byte("a="))
	if string(b) != "a="+c.String() {
		t.Fatalf("got %q", b)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = c.AppendTo(buf[:0]) }); n != 0 {
		t.Fatalf("AppendTo allocates %v times", n)
	}
}

func FuzzParseCandidate(f *testing.F) {
	for _, l := range realLines {
		f.Add(l)
	}
	f.Add("1 1 tcp 5 192.0.2.1 9 typ srflx tcptype active generation 0 rport 7 raddr h.local")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCandidate(s)
		if err != nil {
			return
		}
		out := c.String()
		c2, err := ParseCandidate(out)
		if err != nil {
			t.Fatalf("reparse of %q (from %q): %v", out, s, err)
		}
		if !c.Equal(&c2) {
			t.Fatalf("round trip differs for %q:\n%+v\n%+v", s, c, c2)
		}
		if out2 := c2.String(); out2 != out {
			t.Fatalf("marshal not stable: %q vs %q", out, out2)
		}
	})
}

func TestParseCandidateWhiteSpace(t *testing.T) {
	c, err := ParseCandidate("  a=candidate:1 1\tUDP  2130706431 203.0.113.141 8998 typ host \r\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), "candidate:1 1 UDP 2130706431 203.0.113.141 8998 typ host"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
