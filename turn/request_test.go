package turn

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// parseRequest builds a request of method with body and parses it.
func parseRequest(tb testing.TB, method stun.Method, body func([]byte) []byte) *stun.Message {
	tb.Helper()
	b := body(stun.AppendHeader(nil, stun.Type{Method: method, Class: stun.ClassRequest}, testID))
	m := new(stun.Message)
	if err := m.Parse(b); err != nil {
		tb.Fatalf("Parse(%x): %v", b, err)
	}
	return m
}

func attrTypes(m *stun.Message) []stun.AttrType {
	var ts []stun.AttrType
	for _, a := range m.Attrs {
		ts = append(ts, a.Type)
	}
	return ts
}

// TestRequestBodies checks each request body's attributes, their order and
// their values.
func TestRequestBodies(t *testing.T) {
	peer := netip.MustParseAddrPort("192.0.2.7:4000")
	cases := []struct {
		name   string
		method stun.Method
		body   func([]byte) []byte
		want   []stun.AttrType
		check  func(t *testing.T, m *stun.Message)
	}{
		{"Allocate zero value: UDP", stun.MethodAllocate, (&AllocateRequest{}).Append,
			[]stun.AttrType{stun.AttrRequestedTransport}, func(t *testing.T, m *stun.Message) {
				v, _ := m.Get(stun.AttrRequestedTransport)
				if p, err := ParseRequestedTransport(v); err != nil || p != ProtoUDP {
					t.Errorf("transport %d, %v", p, err)
				}
			}},
		{"Allocate TCP", stun.MethodAllocate, (&AllocateRequest{Transport: ProtoTCP}).Append,
			[]stun.AttrType{stun.AttrRequestedTransport}, func(t *testing.T, m *stun.Message) {
				v, _ := m.Get(stun.AttrRequestedTransport)
				if p, _ := ParseRequestedTransport(v); p != ProtoTCP {
					t.Errorf("transport %d", p)
				}
			}},
		{"Allocate every field", stun.MethodAllocate,
			(&AllocateRequest{Reserve: true, Family: FamilyIPv6, AdditionalFamily: FamilyIPv6, Lifetime: 10 * time.Minute}).Append,
			[]stun.AttrType{stun.AttrRequestedTransport, stun.AttrEvenPort, stun.AttrRequestedAddressFamily,
				stun.AttrAdditionalAddressFamily, stun.AttrLifetime}, func(t *testing.T, m *stun.Message) {
				v, _ := m.Get(stun.AttrEvenPort)
				if r, err := ParseEvenPort(v); err != nil || !r {
					t.Errorf("EVEN-PORT reserve %v, %v", r, err)
				}
				v, _ = m.Get(stun.AttrLifetime)
				if d, _ := ParseLifetime(v); d != 10*time.Minute {
					t.Errorf("LIFETIME %v", d)
				}
			}},
		{"Allocate even port without reserve", stun.MethodAllocate, (&AllocateRequest{EvenPort: true}).Append,
			[]stun.AttrType{stun.AttrRequestedTransport, stun.AttrEvenPort}, func(t *testing.T, m *stun.Message) {
				v, _ := m.Get(stun.AttrEvenPort)
				if r, _ := ParseEvenPort(v); r {
					t.Error("R bit set")
				}
			}},
		{"Refresh default", stun.MethodRefresh, func(b []byte) []byte { return AppendRefresh(b, 0) }, nil, nil},
		{"Refresh lifetime", stun.MethodRefresh, func(b []byte) []byte { return AppendRefresh(b, time.Hour) },
			[]stun.AttrType{stun.AttrLifetime}, nil},
		{"delete", stun.MethodRefresh, AppendDelete, []stun.AttrType{stun.AttrLifetime}, func(t *testing.T, m *stun.Message) {
			v, _ := m.Get(stun.AttrLifetime)
			if d, err := ParseLifetime(v); err != nil || d != 0 {
				t.Errorf("LIFETIME %v, %v", d, err)
			}
		}},
		{"CreatePermission", stun.MethodCreatePermission, func(b []byte) []byte { return AppendPeerAddress(b, peer, testID) },
			[]stun.AttrType{stun.AttrXORPeerAddress}, func(t *testing.T, m *stun.Message) {
				if got, err := m.XORAddress(stun.AttrXORPeerAddress); err != nil || got != peer {
					t.Errorf("peer %v, %v", got, err)
				}
			}},
		{"ChannelBind", stun.MethodChannelBind, func(b []byte) []byte { return AppendChannelBind(b, 0x4001, peer, testID) },
			[]stun.AttrType{stun.AttrChannelNumber, stun.AttrXORPeerAddress}, func(t *testing.T, m *stun.Message) {
				v, _ := m.Get(stun.AttrChannelNumber)
				if ch, _ := ParseChannelNumber(v); ch != 0x4001 {
					t.Errorf("channel %#x", ch)
				}
				if got, _ := m.XORAddress(stun.AttrXORPeerAddress); got != peer {
					t.Errorf("peer %v", got)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := parseRequest(t, tc.method, tc.body)
			if got := attrTypes(m); !slices.Equal(got, tc.want) {
				t.Fatalf("attributes %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

// TestPeerAddressMapped: an IPv4-mapped IPv6 peer stays IPv6 on the wire;
// any other peer is what stun.AppendXORAddress writes.
func TestPeerAddressMapped(t *testing.T) {
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.7]:4000")
	m := parseRequest(t, stun.MethodCreatePermission, func(b []byte) []byte { return AppendPeerAddress(b, mapped, testID) })
	v, _ := m.Get(stun.AttrXORPeerAddress)
	if len(v) != 20 || v[1] != stun.FamilyIPv6 {
		t.Fatalf("value %x: want the IPv6 family", v)
	}
	if got, err := m.XORAddress(stun.AttrXORPeerAddress); err != nil || got != mapped {
		t.Errorf("peer %v, %v; want %v", got, err, mapped)
	}
	for _, p := range []string{"192.0.2.7:4000", "[2001:db8::7]:4000", "192.0.2.7:0"} {
		peer := netip.MustParseAddrPort(p)
		if a, b := AppendPeerAddress(nil, peer, testID), stun.AppendXORAddress(nil, stun.AttrXORPeerAddress, peer, testID); !bytes.Equal(a, b) {
			t.Errorf("%v: %x, stun writes %x", peer, a, b)
		}
	}
}

func TestSendIndication(t *testing.T) {
	peer := netip.MustParseAddrPort("[2001:db8::7]:4000")
	data := []byte("hello through the relay")
	var m stun.Message
	if err := m.Parse(AppendSendIndication(nil, testID, peer, data)); err != nil {
		t.Fatal(err)
	}
	if m.Type != SendIndication || m.TransactionID != testID {
		t.Fatalf("type %v, id %x", m.Type, m.TransactionID)
	}
	if got, _ := m.XORAddress(stun.AttrXORPeerAddress); got != peer {
		t.Errorf("peer %v", got)
	}
	if got, _ := m.Get(stun.AttrData); !bytes.Equal(got, data) {
		t.Errorf("data %q", got)
	}
}

// TestRequestAllocs: the request bodies, and the Send indication that a
// relay without a channel sends per datagram, append without allocating.
func TestRequestAllocs(t *testing.T) {
	out := make([]byte, 0, 2048)
	data := make([]byte, 1200)
	peer := netip.MustParseAddrPort("192.0.2.7:4000")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.7]:4000")
	req := AllocateRequest{Reserve: true, Family: FamilyIPv6, Lifetime: time.Hour}
	cases := map[string]func(){
		"Send indication": func() { out = AppendSendIndication(out[:0], testID, peer, data) },
		"Allocate":        func() { out = req.Append(out[:0]) },
		"ChannelBind":     func() { out = AppendChannelBind(out[:0], 0x4001, peer, testID) },
		"mapped peer":     func() { out = AppendPeerAddress(out[:0], mapped, testID) },
		"Refresh, delete": func() { out = AppendDelete(AppendRefresh(out[:0], time.Hour)) },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}
