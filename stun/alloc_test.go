package stun

import (
	"net/netip"
	"testing"
)

// bindingRequest is what a typical client sends: SOFTWARE and FINGERPRINT.
func bindingRequest() []byte {
	b := AppendHeader(make([]byte, 0, 64), BindingRequest, testID)
	b = AppendAttrString(b, AttrSoftware, "icebreaker")
	return AppendFingerprint(b)
}

var benchFrom = netip.MustParseAddrPort("198.51.100.20:54321")

// answer is the Binding server's hot path: parse, check, respond.
func answer(m *Message, req, out []byte, from netip.AddrPort) ([]byte, error) {
	if err := m.Parse(req); err != nil {
		return nil, err
	}
	if m.Has(AttrFingerprint) {
		if err := m.CheckFingerprint(); err != nil {
			return nil, err
		}
	}
	b := AppendHeader(out[:0], BindingSuccess, m.TransactionID)
	b = AppendXORAddress(b, AttrXORMappedAddress, from, m.TransactionID)
	return AppendFingerprint(b), nil
}

func TestZeroAllocs(t *testing.T) {
	req := bindingRequest()
	req6 := AppendFingerprint(AppendHeader(nil, BindingRequest, testID))
	from6 := netip.MustParseAddrPort("[2001:db8::20]:54321")
	rfc5769 := loadVectors(t)["2.1"]
	var m Message
	out := make([]byte, 0, 128)
	cases := []struct {
		name string
		f    func()
	}{
		{"Parse Binding request", func() {
			if err := m.Parse(req); err != nil {
				t.Fatal(err)
			}
		}},
		{"Parse RFC 5769 request", func() {
			if err := m.Parse(rfc5769); err != nil {
				t.Fatal(err)
			}
		}},
		{"CheckFingerprint", func() {
			if err := m.CheckFingerprint(); err != nil {
				t.Fatal(err)
			}
		}},
		{"build Binding success", func() {
			b := AppendHeader(out[:0], BindingSuccess, testID)
			b = AppendXORAddress(b, AttrXORMappedAddress, benchFrom, testID)
			out = AppendFingerprint(b)
		}},
		{"build Binding success IPv6", func() {
			b := AppendHeader(out[:0], BindingSuccess, testID)
			b = AppendXORAddress(b, AttrXORMappedAddress, from6, testID)
			out = AppendFingerprint(b)
		}},
		{"parse and answer", func() {
			var err error
			if out, err = answer(&m, req, out, benchFrom); err != nil {
				t.Fatal(err)
			}
		}},
		{"parse and answer IPv6", func() {
			var err error
			if out, err = answer(&m, req6, out, from6); err != nil {
				t.Fatal(err)
			}
		}},
		{"read XOR-MAPPED-ADDRESS", func() {
			resp, _ := answer(&m, req, out, benchFrom)
			if err := m.Parse(resp); err != nil {
				t.Fatal(err)
			}
			if a, err := m.XORMappedAddress(); err != nil || a != benchFrom {
				t.Fatal(a, err)
			}
		}},
		{"ParseText", func() {
			if _, err := ParseText(AttrSoftware, req[24:34]); err != nil {
				t.Fatal(err)
			}
		}},
	}
	if err := m.Parse(req); err != nil { // CheckFingerprint needs it
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, tc.f); n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
}

func BenchmarkParseBindingRequest(b *testing.B) {
	req := bindingRequest()
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if err := m.Parse(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckFingerprint(b *testing.B) {
	var m Message
	if err := m.Parse(bindingRequest()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.CheckFingerprint(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildBindingSuccess(b *testing.B) {
	out := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		o := AppendHeader(out[:0], BindingSuccess, testID)
		o = AppendXORAddress(o, AttrXORMappedAddress, benchFrom, testID)
		out = AppendFingerprint(o)
	}
}

func BenchmarkBindingRound(b *testing.B) {
	req := bindingRequest()
	out := make([]byte, 0, 128)
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = answer(&m, req, out, benchFrom); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckIntegrity(b *testing.B) {
	key := []byte("VOkJxbRl1RmTxUk/WvJxBt")
	var m Message
	if err := m.Parse(loadVectors(b)["2.1"]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.CheckIntegrity(key); err != nil {
			b.Fatal(err)
		}
	}
}
