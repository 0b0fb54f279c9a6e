package ice

import (
	"net/netip"
	"testing"
)

func TestPriority(t *testing.T) {
	tests := []struct {
		name                string
		typePref, localPref uint32
		component           uint16
		want                uint32
	}{
		// RFC 8839, Section 5.1 example: host 2130706431 and srflx
		// 1694498815, both with local preference 65535 and component 1.
		{"rfc8839 host", TypePrefHost, 65535, 1, 2130706431},
		{"rfc8839 srflx", TypePrefServerReflexive, 65535, 1, 1694498815},
		// 2^24*110 + 2^8*65535 + 255.
		{"prflx", TypePrefPeerReflexive, 65535, 1, 1862270975},
		// Relay, RTCP component: 0 + 2^8*65535 + 254.
		{"relay rtcp", TypePrefRelay, 65535, 2, 16777214},
		// Chrome's host candidate 2122260223 = 2^24*126 + 2^8*32542 + 255.
		{"chrome host", TypePrefHost, 32542, 1, 2122260223},
		{"component 256", 0, 0, 256, 0},
		{"clamp type", 200, 0, 1, 126<<24 | 255},
		{"clamp local", 0, 1 << 20, 1, 65535<<8 | 255},
		{"clamp component 0", 0, 0, 0, 255},
		{"clamp component 300", 0, 0, 300, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Priority(tt.typePref, tt.localPref, tt.component); got != tt.want {
				t.Fatalf("Priority(%d, %d, %d) = %d, want %d", tt.typePref, tt.localPref, tt.component, got, tt.want)
			}
		})
	}
	for typ, want := range map[CandidateType]uint32{TypeHost: 126, TypePeerReflexive: 110, TypeServerReflexive: 100, TypeRelay: 0} {
		if got := typ.Preference(); got != want {
			t.Errorf("%v.Preference() = %d, want %d", typ, got, want)
		}
	}
}

func TestTCPLocalPreference(t *testing.T) {
	tests := []struct {
		typ   CandidateType
		tcp   TCPType
		other uint32
		want  uint32
	}{
		{TypeHost, TCPTypeActive, 8191, 6<<13 + 8191},
		{TypeHost, TCPTypePassive, 0, 4 << 13},
		{TypeHost, TCPTypeSO, 0, 2 << 13},
		{TypeRelay, TCPTypeActive, 0, 6 << 13},
		{TypeServerReflexive, TCPTypeSO, 0, 6 << 13},
		{TypeServerReflexive, TCPTypeActive, 0, 4 << 13},
		{TypePeerReflexive, TCPTypePassive, 0, 2 << 13},
		{TypeHost, TCPTypeActive, 1 << 20, 6<<13 + 8191}, // clamped
	}
	for _, tt := range tests {
		if got := TCPLocalPreference(tt.typ, tt.tcp, tt.other); got != tt.want {
			t.Errorf("TCPLocalPreference(%v, %v, %d) = %d, want %d", tt.typ, tt.tcp, tt.other, got, tt.want)
		}
	}
}

func TestLocalPreferences(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("192.168.1.2"),       // v4 #1
		netip.MustParseAddr("10.8.0.2"),          // v4 #2
		netip.MustParseAddr("2001:db8::1"),       // v6 #1
		netip.MustParseAddr("fe80::1"),           // link-local: last group
		netip.MustParseAddr("2001:db8::2"),       // v6 #2
		netip.MustParseAddr("127.0.0.1"),         // loopback: last group
		netip.MustParseAddr("::ffff:172.16.0.9"), // mapped: v4 #3
	}
	// Interlaced v6 first: v6#1 v4#1 v6#2 v4#2 v4#3, then fe80::1, 127.0.0.1.
	want := []uint32{65534, 65532, 65535, 65530, 65533, 65529, 65531}
	got := LocalPreferences(addrs)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("LocalPreferences = %v, want %v", got, want)
		}
	}
	if len(LocalPreferences(nil)) != 0 {
		t.Fatal("LocalPreferences(nil) not empty")
	}
}

func TestFoundation(t *testing.T) {
	base := netip.MustParseAddr("10.0.0.1")
	stunA := netip.MustParseAddr("203.0.113.1")
	f := Foundation(TypeServerReflexive, base, stunA, TransportUDP)
	if len(f) == 0 || len(f) > 32 || !allChars(f, isIceChar) {
		t.Fatalf("foundation %q is not 1 to 32 ice-chars", f)
	}
	// Deterministic, and IPv4-mapped bases are the same base.
	if g := Foundation(TypeServerReflexive, netip.MustParseAddr("::ffff:10.0.0.1"), stunA, TransportUDP); g != f {
		t.Fatalf("same inputs gave %q and %q", f, g)
	}
	// Each of the four inputs of RFC 8445, Section 5.1.1.3, changes it.
	others := map[string]string{
		"type":      Foundation(TypeRelay, base, stunA, TransportUDP),
		"base":      Foundation(TypeServerReflexive, netip.MustParseAddr("10.0.0.2"), stunA, TransportUDP),
		"server":    Foundation(TypeServerReflexive, base, netip.MustParseAddr("203.0.113.2"), TransportUDP),
		"transport": Foundation(TypeServerReflexive, base, stunA, TransportTCP),
		"host":      Foundation(TypeHost, base, netip.Addr{}, TransportUDP),
	}
	seen := map[string]string{f: "original"}
	for name, g := range others {
		if prev, dup := seen[g]; dup {
			t.Errorf("changing %s gave the same foundation as %s: %q", name, prev, g)
		}
		seen[g] = name
	}
}

func TestPruneRedundant(t *testing.T) {
	host := Candidate{Foundation: "1", Component: 1, Type: TypeHost, Priority: 2130706431,
		Addr: netip.MustParseAddrPort("192.0.2.1:5000")}
	// A server-reflexive candidate equal to its base (no NAT): same address
	// and base as the host candidate, lower priority, so it goes.
	srflxSame := Candidate{Foundation: "2", Component: 1, Type: TypeServerReflexive, Priority: 1694498815,
		Addr: host.Addr, Base: host.Addr, Related: host.Addr}
	// Same address but another base: kept.
	otherBase := Candidate{Foundation: "3", Component: 1, Type: TypeServerReflexive, Priority: 1694498814,
		Addr: host.Addr, Base: netip.MustParseAddrPort("10.0.0.1:5000")}
	// Same address, another component: kept.
	rtcp := host
	rtcp.Component, rtcp.Priority = 2, 2130706430
	// The lower-priority copy comes first: the higher one still wins.
	in := []Candidate{srflxSame, otherBase, host, rtcp}
	out := PruneRedundant(in)
	if len(out) != 3 || out[0].Foundation != "3" || out[1].Foundation != "1" || out[2].Component != 2 {
		t.Fatalf("PruneRedundant = %+v", out)
	}
	if in[0].Foundation != "2" || len(in) != 4 {
		t.Fatal("PruneRedundant modified its input")
	}
}
