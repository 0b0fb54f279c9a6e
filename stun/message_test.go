package stun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

func TestParseFraming(t *testing.T) {
	valid := rawMessage(0x0001, MagicCookie, testID, attr(AttrSoftware, "abcd"))
	withLength := func(b []byte, n uint16) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint16(b[2:4], n)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"19 bytes", valid[:19], ErrTruncated},
		{"top bits 01", append([]byte{0x40}, valid[1:]...), ErrNotSTUN},
		{"top bits 10", append([]byte{0x80}, valid[1:]...), ErrNotSTUN},
		{"length 1", withLength(valid[:21], 1), ErrNotSTUN},
		{"length 2", withLength(valid[:22], 2), ErrNotSTUN},
		{"length 3", withLength(valid[:23], 3), ErrNotSTUN},
		{"length 6 of 8", withLength(valid, 6), ErrNotSTUN},
		{"header says more than the buffer", withLength(valid, 12), ErrTruncated},
		{"header says less than the buffer", withLength(valid, 4), ErrMalformed},
		{"trailing bytes", append(bytes.Clone(valid), 0, 0, 0, 0), ErrMalformed},
		{"attribute length overflows the message", rawMessage(0x0001, MagicCookie, testID,
			wireAttr{typ: AttrSoftware, val: []byte("abcd"), lie: true, declared: 5}), ErrTruncated},
		{"attribute length far past the end", rawMessage(0x0001, MagicCookie, testID,
			wireAttr{typ: AttrSoftware, val: []byte("abcd"), lie: true, declared: 0xffff}), ErrTruncated},
		{"second attribute overflows", rawMessage(0x0001, MagicCookie, testID,
			attr(AttrSoftware, "abcd"), wireAttr{typ: AttrUsername, val: []byte("abcd"), lie: true, declared: 8}), ErrTruncated},
		{"FINGERPRINT before another attribute", rawMessage(0x0001, MagicCookie, testID,
			attr(AttrFingerprint, "abcd"), attr(AttrSoftware, "abcd")), ErrMalformed},
		{"FINGERPRINT twice", rawMessage(0x0001, MagicCookie, testID,
			attr(AttrFingerprint, "abcd"), attr(AttrFingerprint, "abcd")), ErrMalformed},
		{"FINGERPRINT before MESSAGE-INTEGRITY", rawMessage(0x0001, MagicCookie, testID,
			attr(AttrFingerprint, "abcd"), attr(AttrMessageIntegrity, "01234567890123456789")), ErrMalformed},
		{"valid", valid, nil},
		{"header only, length field still says 8", valid[:HeaderSize:HeaderSize], ErrTruncated},
		{"empty body", withLength(valid[:HeaderSize], 0), nil},
		{"zero-length attribute", rawMessage(0x0001, MagicCookie, testID, attr(AttrUseCandidate, "")), nil},
		{"FINGERPRINT last", rawMessage(0x0001, MagicCookie, testID,
			attr(AttrSoftware, "abc"), attr(AttrFingerprint, "abcd")), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			err := m.Parse(tc.b)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Parse(%x) = %v, want %v", tc.b, err, tc.want)
			}
			if err == nil && !bytes.Equal(m.Raw, tc.b) {
				t.Fatalf("Raw = %x, want the input", m.Raw)
			}
		})
	}
}

// TestParseErrorsDoNotLeak checks that a failed Parse leaves no attributes
// of an earlier message behind.
func TestParseErrorsDoNotLeak(t *testing.T) {
	var m Message
	if err := m.Parse(rawMessage(0x0001, MagicCookie, testID, attr(AttrUsername, "user"))); err != nil {
		t.Fatal(err)
	}
	if err := m.Parse([]byte{1, 2, 3}); err == nil {
		t.Fatal("3 bytes parsed")
	}
	if len(m.Attrs) != 0 || m.Raw != nil || m.Has(AttrUsername) {
		t.Fatalf("after a failed Parse: Attrs %v, Raw %x", m.Attrs, m.Raw)
	}
}

func TestAttributePadding(t *testing.T) {
	for n := 0; n <= 7; n++ {
		val := []byte("ABCDEFG"[:n])
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			// Our encoder: zero padding to a multiple of 4, and the next
			// attribute starts after the padding.
			b := AppendHeader(nil, BindingRequest, testID)
			b = AppendAttr(b, AttrSoftware, val)
			b = AppendUint32Attr(b, AttrPriority, 0xdeadbeef)
			if want := HeaderSize + 4 + pad4(n) + 8; len(b) != want {
				t.Fatalf("encoded %d bytes, want %d", len(b), want)
			}
			if pad := b[HeaderSize+4+n : HeaderSize+4+pad4(n)]; !bytes.Equal(pad, make([]byte, len(pad))) {
				t.Fatalf("padding %x is not zero", pad)
			}
			m := mustParse(t, b)
			if v, ok := m.Get(AttrSoftware); !ok || !bytes.Equal(v, val) || cap(v) != len(v) {
				t.Fatalf("SOFTWARE = %q (cap %d), %v", v, cap(v), ok)
			}
			if p, err := Uint32(must(m.Get(AttrPriority))); err != nil || p != 0xdeadbeef {
				t.Fatalf("PRIORITY = %x, %v", p, err)
			}

			// Another encoder's padding content is ignored: RFC 5769 pads
			// with 0x20, some stacks with garbage.
			for _, pad := range []byte{0x00, 0x20, 0xff} {
				raw := rawMessage(0x0001, MagicCookie, testID,
					wireAttr{typ: AttrSoftware, val: val, pad: pad},
					attr(AttrPriority, "\xde\xad\xbe\xef"))
				m := mustParse(t, raw)
				if v, _ := m.Get(AttrSoftware); !bytes.Equal(v, val) {
					t.Fatalf("pad 0x%02x: SOFTWARE = %q", pad, v)
				}
				if v, _ := m.Get(AttrPriority); string(v) != "\xde\xad\xbe\xef" {
					t.Fatalf("pad 0x%02x: PRIORITY = %x", pad, v)
				}
			}
		})
	}
}

func must(v []byte, ok bool) []byte {
	if !ok {
		return nil
	}
	return v
}

// TestAttributesAfterIntegrity covers RFC 8489, Sections 14.5-14.7: after
// MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count;
// after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT; FINGERPRINT is last.
func TestAttributesAfterIntegrity(t *testing.T) {
	mi := attr(AttrMessageIntegrity, "0123456789abcdefghij")
	mi256 := attr(AttrMessageIntegritySHA256, "0123456789abcdefghij0123456789ab")
	fp := attr(AttrFingerprint, "abcd")
	user := attr(AttrUsername, "user")
	sw := attr(AttrSoftware, "software")
	unknown := attr(0x7777, "x")
	cases := []struct {
		name  string
		attrs []wireAttr
		want  []AttrType
	}{
		{"MI then SOFTWARE then FINGERPRINT", []wireAttr{user, mi, sw, fp},
			[]AttrType{AttrUsername, AttrMessageIntegrity, AttrFingerprint}},
		{"MI then MI-SHA256", []wireAttr{user, mi, mi256},
			[]AttrType{AttrUsername, AttrMessageIntegrity, AttrMessageIntegritySHA256}},
		{"MI, SOFTWARE, MI-SHA256, FINGERPRINT", []wireAttr{mi, sw, mi256, fp},
			[]AttrType{AttrMessageIntegrity, AttrMessageIntegritySHA256, AttrFingerprint}},
		{"MI-SHA256 then MI", []wireAttr{user, mi256, mi},
			[]AttrType{AttrUsername, AttrMessageIntegritySHA256}},
		{"MI-SHA256 then SOFTWARE then FINGERPRINT", []wireAttr{mi256, sw, fp},
			[]AttrType{AttrMessageIntegritySHA256, AttrFingerprint}},
		{"MI twice", []wireAttr{mi, mi},
			[]AttrType{AttrMessageIntegrity}},
		{"MI-SHA256 twice", []wireAttr{mi256, mi256},
			[]AttrType{AttrMessageIntegritySHA256}},
		{"unknown comprehension-required after MI is ignored", []wireAttr{mi, unknown},
			[]AttrType{AttrMessageIntegrity}},
		{"no integrity: all kept", []wireAttr{user, sw, unknown, fp},
			[]AttrType{AttrUsername, AttrSoftware, 0x7777, AttrFingerprint}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, rawMessage(0x0001, MagicCookie, testID, tc.attrs...))
			if got := attrTypes(m); !sameTypes(got, tc.want) {
				t.Fatalf("Attrs = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("FINGERPRINT must be last even after MI", func(t *testing.T) {
		var m Message
		err := m.Parse(rawMessage(0x0001, MagicCookie, testID, mi, fp, sw))
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse = %v, want ErrMalformed", err)
		}
	})
}

func TestTypeEncoding(t *testing.T) {
	known := []struct {
		t Type
		v uint16
	}{
		{BindingRequest, 0x0001},
		{BindingIndication, 0x0011},
		{BindingSuccess, 0x0101},
		{BindingError, 0x0111},
		{Type{MethodAllocate, ClassRequest}, 0x0003},
		{Type{MethodAllocate, ClassSuccess}, 0x0103},
		{Type{MethodAllocate, ClassError}, 0x0113},
		{Type{MethodRefresh, ClassError}, 0x0114},
		{Type{MethodSend, ClassIndication}, 0x0016},
		{Type{MethodData, ClassIndication}, 0x0017},
		{Type{MethodCreatePermission, ClassRequest}, 0x0008},
		{Type{MethodChannelBind, ClassSuccess}, 0x0109},
		{Type{MethodConnectionAttempt, ClassIndication}, 0x001c},
		{Type{0x010, ClassRequest}, 0x0020},  // M4 moves past C0
		{Type{0x080, ClassRequest}, 0x0200},  // M7 moves past C1
		{Type{0xfff, ClassRequest}, 0x3eef},  // every method bit
		{Type{0xfff, ClassError}, 0x3fff},    // every bit
		{Type{0x000, ClassError}, 0x0110},    // the class bits alone
		{Type{0x000, ClassIndication}, 0x10}, // C0 alone
	}
	for _, k := range known {
		t.Run(k.t.String(), func(t *testing.T) {
			if got := k.t.Value(); got != k.v {
				t.Fatalf("Value() = 0x%04x, want 0x%04x", got, k.v)
			}
			if got := TypeFromValue(k.v); got != k.t {
				t.Fatalf("TypeFromValue(0x%04x) = %v, want %v", k.v, got, k.t)
			}
		})
	}
	t.Run("all 4096 methods x 4 classes", func(t *testing.T) {
		var seen [1 << 14]bool
		for m := Method(0); m < 0x1000; m++ {
			for c := ClassRequest; c <= ClassError; c++ {
				v := Type{m, c}.Value()
				if v >= 1<<14 {
					t.Fatalf("%v: value 0x%04x sets the top two bits", Type{m, c}, v)
				}
				if seen[v] {
					t.Fatalf("%v: value 0x%04x produced twice", Type{m, c}, v)
				}
				seen[v] = true
				if got := TypeFromValue(v); got != (Type{m, c}) {
					t.Fatalf("round trip of %v gave %v", Type{m, c}, got)
				}
			}
		}
	})
	t.Run("through Parse", func(t *testing.T) {
		for _, k := range known {
			m := mustParse(t, AppendHeader(nil, k.t, testID))
			if m.Type != k.t {
				t.Fatalf("parsed %v, want %v", m.Type, k.t)
			}
		}
	})
	t.Run("String", func(t *testing.T) {
		if s := BindingSuccess.String(); s != "Binding success response" {
			t.Fatalf("BindingSuccess.String() = %q", s)
		}
		if s := (Type{0x123, ClassIndication}).String(); s != "Method(0x123) indication" {
			t.Fatalf("String() = %q", s)
		}
		if s := Class(7).String(); s != "Class(7)" {
			t.Fatalf("Class(7).String() = %q", s)
		}
	})
}

func TestClassicMessage(t *testing.T) {
	const cookie = 0x0badf00d
	b := rawMessage(0x0001, cookie, testID, attr(AttrChangeRequest, "\x00\x00\x00\x06"))
	m := mustParse(t, b)
	if !m.Classic || m.Cookie != cookie || m.TransactionID != testID || m.Type != BindingRequest {
		t.Fatalf("Classic %v Cookie %08x ID %x Type %v", m.Classic, m.Cookie, m.TransactionID, m.Type)
	}
	if Is(b) {
		t.Fatal("Is accepted a message without the magic cookie")
	}
	// A server answers with the 128-bit ID it got, and MAPPED-ADDRESS.
	resp := AppendClassicHeader(nil, BindingSuccess, m.Cookie, m.TransactionID)
	if !bytes.Equal(resp[4:20], b[4:20]) {
		t.Fatalf("classic response ID %x, request had %x", resp[4:20], b[4:20])
	}
	r := mustParse(t, resp)
	if !r.Classic || r.Cookie != cookie || r.TransactionID != testID || r.Type != BindingSuccess {
		t.Fatalf("response: Classic %v Cookie %08x ID %x Type %v", r.Classic, r.Cookie, r.TransactionID, r.Type)
	}
	// The modern header is not classic.
	if m := mustParse(t, AppendHeader(nil, BindingRequest, testID)); m.Classic || m.Cookie != MagicCookie {
		t.Fatalf("modern message: Classic %v Cookie %08x", m.Classic, m.Cookie)
	}
}

func TestUnknownRequired(t *testing.T) {
	b := rawMessage(0x0001, MagicCookie, testID,
		attr(AttrUsername, "u"),
		attr(0x0030, "a"),
		attr(0x8030, "optional, ignored"),
		attr(0x0031, "b"),
		attr(0x0030, "duplicate"),
		attr(AttrPriority, "\x00\x00\x00\x01"),
	)
	m := mustParse(t, b)
	known := func(t AttrType) bool { return t == AttrUsername || t == AttrPriority }
	got := m.UnknownRequired(nil, known)
	if want := []AttrType{0x0030, 0x0031}; !sameTypes(got, want) {
		t.Fatalf("UnknownRequired = %v, want %v", got, want)
	}
	// It appends to dst without repeating what dst holds.
	if got := m.UnknownRequired([]AttrType{0x0031}, known); !sameTypes(got, []AttrType{0x0031, 0x0030}) {
		t.Fatalf("UnknownRequired(dst) = %v", got)
	}
	if got := m.UnknownRequired(nil, func(AttrType) bool { return true }); len(got) != 0 {
		t.Fatalf("everything known, got %v", got)
	}

	// The 420 answer a server builds from it. RFC 8489, Section 6.3.1.1.
	unknown := m.UnknownRequired(nil, known)
	resp := AppendHeader(nil, BindingError, m.TransactionID)
	resp = AppendErrorCode(resp, CodeUnknownAttribute, "")
	resp = AppendUnknownAttributes(resp, unknown)
	resp = AppendFingerprint(resp)
	r := mustParse(t, resp)
	code, reason, err := r.ErrorCode()
	if err != nil || code != 420 || reason != "Unknown Attribute" {
		t.Fatalf("ERROR-CODE = %d %q, %v", code, reason, err)
	}
	list, err := ParseUnknownAttributes(nil, must(r.Get(AttrUnknownAttributes)))
	if err != nil || !sameTypes(list, unknown) {
		t.Fatalf("UNKNOWN-ATTRIBUTES = %v, %v", list, err)
	}
	if err := r.CheckFingerprint(); err != nil {
		t.Fatal(err)
	}
}

func TestComprehensionRequired(t *testing.T) {
	for _, tc := range []struct {
		t    AttrType
		want bool
	}{
		{0x0000, true}, {AttrUsername, true}, {0x7fff, true},
		{0x8000, false}, {AttrSoftware, false}, {0xffff, false},
	} {
		if got := tc.t.ComprehensionRequired(); got != tc.want {
			t.Errorf("%v.ComprehensionRequired() = %v", tc.t, got)
		}
	}
	if s := AttrXORMappedAddress.String(); s != "XOR-MAPPED-ADDRESS" {
		t.Errorf("String() = %q", s)
	}
	if s := AttrType(0x4242).String(); s != "0x4242" {
		t.Errorf("String() = %q", s)
	}
}

func TestIs(t *testing.T) {
	valid := rawMessage(0x0001, MagicCookie, testID, attr(AttrSoftware, "x"))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"valid", valid, true},
		{"header only", AppendHeader(nil, BindingSuccess, testID), true},
		{"nil", nil, false},
		{"19 bytes", valid[:19], false},
		{"top bit", mod(func(b []byte) []byte { b[0] |= 0x80; return b }), false},
		{"second bit", mod(func(b []byte) []byte { b[0] |= 0x40; return b }), false},
		{"no cookie", rawMessage(0x0001, 0x01020304, testID), false},
		{"length not multiple of 4", mod(func(b []byte) []byte { b[3] = 6; return b[:26] }), false},
		{"length longer than buffer", mod(func(b []byte) []byte { b[3] = 12; return b }), false},
		{"trailing bytes", append(bytes.Clone(valid), 0, 0, 0, 0), false},
		{"ChannelData", []byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Is(tc.b); got != tc.want {
				t.Fatalf("Is(%x) = %v", tc.b, got)
			}
		})
	}
}

func TestMessageLength(t *testing.T) {
	a := rawMessage(0x0001, MagicCookie, testID, attr(AttrSoftware, "first"))
	b := rawMessage(0x0101, MagicCookie, testID, attr(AttrSoftware, "second message"))
	cases := []struct {
		name    string
		b       []byte
		want    int
		wantErr error
	}{
		{"whole message", a, len(a), nil},
		{"header alone is enough", a[:HeaderSize], len(a), nil},
		{"two messages back to back", append(bytes.Clone(a), b...), len(a), nil},
		{"short", a[:HeaderSize-1], 0, ErrTruncated},
		{"first byte 0x17: top bits 00, the length decides", append([]byte{0x17}, a[1:]...), len(a), nil},
		{"top bits", append([]byte{0xc0}, a[1:]...), 0, ErrNotSTUN},
		{"length not multiple of 4", func() []byte { c := bytes.Clone(a); c[3] = 7; return c }(), 0, ErrNotSTUN},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := MessageLength(tc.b)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) || n != tc.want {
				t.Fatalf("MessageLength = %d, %v; want %d, %v", n, err, tc.want, tc.wantErr)
			}
		})
	}
	t.Run("framing a stream", func(t *testing.T) {
		stream := append(append(bytes.Clone(a), b...), a...)
		var got []Type
		for len(stream) > 0 {
			n, err := MessageLength(stream)
			if err != nil || n > len(stream) {
				t.Fatalf("MessageLength = %d, %v with %d bytes left", n, err, len(stream))
			}
			got = append(got, mustParse(t, stream[:n]).Type)
			stream = stream[n:]
		}
		if len(got) != 3 || got[0] != BindingRequest || got[1] != BindingSuccess || got[2] != BindingRequest {
			t.Fatalf("framed %v", got)
		}
	})
}

func TestClassify(t *testing.T) {
	// RFC 7983, Section 7, as updated by RFC 9443: the first-byte ranges;
	// every other byte is KindUnknown.
	ranges := []struct {
		lo, hi byte
		kind   Kind
	}{
		{0, 3, KindSTUN}, {16, 19, KindZRTP}, {20, 63, KindDTLS},
		{64, 79, KindChannelData}, {128, 191, KindRTP},
	}
	for c := 0; c < 256; c++ {
		want := KindUnknown
		for _, r := range ranges {
			if byte(c) >= r.lo && byte(c) <= r.hi {
				want = r.kind
			}
		}
		if got := Classify([]byte{byte(c), 0, 0, 0}); got != want {
			t.Errorf("Classify(0x%02x) = %v, want %v", c, got, want)
		}
		if got := Classify([]byte{byte(c)}); got != want {
			t.Errorf("Classify(%d) of one byte = %v, want %v", c, got, want)
		}
	}
	if got := Classify(nil); got != KindUnknown {
		t.Errorf("Classify(nil) = %v", got)
	}
	if got := Classify(AppendHeader(nil, BindingRequest, testID)); got != KindSTUN {
		t.Errorf("Classify(Binding request) = %v", got)
	}
	for k := KindUnknown; k <= KindRTP; k++ {
		if k.String() == "" {
			t.Errorf("Kind(%d).String() is empty", k)
		}
	}
}

func TestNewTransactionID(t *testing.T) {
	a, b := NewTransactionID(), NewTransactionID()
	if a == b || a == (TransactionID{}) {
		t.Fatalf("NewTransactionID gave %x and %x", a, b)
	}
}

func TestGetHas(t *testing.T) {
	var zero Message
	if zero.Has(AttrUsername) {
		t.Fatal("zero Message has USERNAME")
	}
	if _, err := zero.Username(); !errors.Is(err, ErrAttrNotFound) {
		t.Fatalf("zero Message Username: %v", err)
	}
	if err := zero.CheckFingerprint(); !errors.Is(err, ErrAttrNotFound) {
		t.Fatalf("zero Message CheckFingerprint: %v", err)
	}
	if err := zero.CheckIntegrity([]byte("k")); !errors.Is(err, ErrAttrNotFound) {
		t.Fatalf("zero Message CheckIntegrity: %v", err)
	}
	m := mustParse(t, rawMessage(0x0001, MagicCookie, testID, attr(AttrSoftware, "one"), attr(AttrSoftware, "two")))
	if v, ok := m.Get(AttrSoftware); !ok || string(v) != "one" {
		t.Fatalf("Get returned %q, %v; want the first", v, ok)
	}
	// More attributes than the inline array holds.
	b := AppendHeader(nil, BindingRequest, testID)
	for i := range 40 {
		b = AppendUint32Attr(b, AttrType(0x8100+i), uint32(i))
	}
	m = mustParse(t, b)
	if len(m.Attrs) != 40 {
		t.Fatalf("parsed %d attributes, want 40", len(m.Attrs))
	}
	for i, a := range m.Attrs {
		if v, err := Uint32(a.Value); a.Type != AttrType(0x8100+i) || err != nil || v != uint32(i) {
			t.Fatalf("attribute %d: %v %x", i, a.Type, a.Value)
		}
	}
}
