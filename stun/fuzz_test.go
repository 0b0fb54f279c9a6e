package stun

import (
	"bytes"
	"net/netip"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for every parser of the package. Each checks that bad input
// gives an error rather than a panic, and that what parses survives
// parse -> append -> parse unchanged. Run one with
//
//	go test -run='^$' -fuzz='^FuzzParse$' -fuzztime=45s ./stun/
//
// or all of them with scripts/fuzz.sh.

var fuzzKey = []byte("fuzz key")

// seedMessages returns whole messages: the RFC 5769 and RFC 8489 B.1
// vectors and a few built here.
func seedMessages(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	for _, s := range []string{"2.1", "2.2", "2.3", "2.4"} {
		out = append(out, loadVectors(f)[s])
	}
	out = append(out, loadB1(f))

	b := AppendHeader(nil, BindingError, testID)
	b = AppendErrorCode(b, CodeUnknownAttribute, "")
	b = AppendUnknownAttributes(b, []AttrType{0x0030, 0x0031, 0x0032})
	b = AppendPasswordAlgorithms(b, []PasswordAlgorithmParams{{Algorithm: PasswordSHA256}, {Algorithm: PasswordMD5, Params: []byte{1, 2, 3}}})
	b = AppendAttr(b, AttrNonce, AppendNonceCookie(nil, FeaturePasswordAlgorithms))
	b = AppendAddress(b, AttrAlternateServer, netip.MustParseAddrPort("[2001:db8::1]:3478"))
	b = AppendAttrString(b, AttrAlternateDomain, "example.net")
	b = AppendMessageIntegrity(b, fuzzKey)
	b = AppendMessageIntegritySHA256(b, fuzzKey)
	out = append(out, AppendFingerprint(b))

	out = append(out, bindingRequest())
	out = append(out, AppendFingerprint(AppendClassicHeader(nil, BindingRequest, 0x01020304, testID)))
	out = append(out, AppendXORAddress(AppendHeader(nil, BindingSuccess, testID), AttrXORMappedAddress,
		netip.MustParseAddrPort("192.0.2.1:32853"), testID))
	return out
}

// seedAttrs returns the values of the attributes of the given types in the
// seed messages.
func seedAttrs(f *testing.F, types ...AttrType) [][]byte {
	f.Helper()
	var out [][]byte
	for _, b := range seedMessages(f) {
		var m Message
		if err := m.Parse(b); err != nil {
			f.Fatal(err)
		}
		for _, a := range m.Attrs {
			for _, t := range types {
				if a.Type == t {
					out = append(out, bytes.Clone(a.Value))
				}
			}
		}
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, b := range seedMessages(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		err := m.Parse(b)
		// None of these may panic, whether Parse succeeded or not.
		_ = m.CheckFingerprint()
		_ = m.CheckIntegrity(fuzzKey)
		_ = m.CheckIntegritySHA256(fuzzKey)
		_ = Classify(b)
		n, lenErr := MessageLength(b)
		if err != nil {
			return
		}
		if lenErr != nil || n != len(b) {
			t.Fatalf("parsed, but MessageLength = %d, %v for %d bytes", n, lenErr, len(b))
		}
		if Is(b) != !m.Classic {
			t.Fatalf("Is = %v for a message with Classic = %v", Is(b), m.Classic)
		}
		for _, a := range m.Attrs {
			decodeAny(a, m.TransactionID)
			if a.Offset < HeaderSize || a.Offset+AttrHeaderSize+len(a.Value) > len(b) {
				t.Fatalf("attribute %v at offset %d of %d bytes", a.Type, a.Offset, len(a.Value))
			}
		}
		for _, at := range []AttrType{AttrUsername, AttrRealm, AttrNonce, AttrSoftware, AttrAlternateDomain} {
			_, _ = m.Text(at)
		}
		_, _ = m.ReflexiveAddress()
		_, _, _ = m.ErrorCode()
		_ = m.UnknownRequired(nil, func(AttrType) bool { return false })

		// Re-encode every attribute into a fresh header.
		r := appendSameHeader(nil, &m)
		if !bytes.Equal(r[:2], b[:2]) || !bytes.Equal(r[4:HeaderSize], b[4:HeaderSize]) {
			t.Fatalf("header %x re-encoded as %x", b[:HeaderSize], r)
		}
		for _, a := range m.Attrs {
			r = AppendAttr(r, a.Type, a.Value)
		}
		var m2 Message
		if err := m2.Parse(r); err != nil {
			t.Fatalf("re-encoded message does not parse: %v\n in  %x\n out %x", err, b, r)
		}
		if m2.Type != m.Type || m2.TransactionID != m.TransactionID || m2.Classic != m.Classic || m2.Cookie != m.Cookie {
			t.Fatalf("header changed: %v %x %v %x -> %v %x %v %x", m.Type, m.TransactionID, m.Classic, m.Cookie,
				m2.Type, m2.TransactionID, m2.Classic, m2.Cookie)
		}
		if len(m2.Attrs) != len(m.Attrs) {
			t.Fatalf("%d attributes became %d", len(m.Attrs), len(m2.Attrs))
		}
		for i := range m.Attrs {
			if m.Attrs[i].Type != m2.Attrs[i].Type || !bytes.Equal(m.Attrs[i].Value, m2.Attrs[i].Value) {
				t.Fatalf("attribute %d: %v %x became %v %x", i, m.Attrs[i].Type, m.Attrs[i].Value, m2.Attrs[i].Type, m2.Attrs[i].Value)
			}
		}

		// Sign what precedes the integrity attributes afresh: all checks
		// must then pass.
		s := appendSameHeader(nil, &m)
		for _, a := range m.Attrs {
			if a.Type == AttrMessageIntegrity || a.Type == AttrMessageIntegritySHA256 || a.Type == AttrFingerprint {
				break
			}
			s = AppendAttr(s, a.Type, a.Value)
		}
		if len(s)+24+36+8 > HeaderSize+0xffff {
			return
		}
		s = AppendMessageIntegrity(s, fuzzKey)
		s = AppendMessageIntegritySHA256(s, fuzzKey)
		s = AppendFingerprint(s)
		var m3 Message
		if err := m3.Parse(s); err != nil {
			t.Fatalf("signed message does not parse: %v", err)
		}
		if err := m3.CheckIntegrity(fuzzKey); err != nil {
			t.Fatalf("MESSAGE-INTEGRITY: %v", err)
		}
		if err := m3.CheckIntegritySHA256(fuzzKey); err != nil {
			t.Fatalf("MESSAGE-INTEGRITY-SHA256: %v", err)
		}
		if err := m3.CheckFingerprint(); err != nil {
			t.Fatalf("FINGERPRINT: %v", err)
		}
	})
}

func appendSameHeader(b []byte, m *Message) []byte {
	if m.Classic {
		return AppendClassicHeader(b, m.Type, m.Cookie, m.TransactionID)
	}
	return AppendHeader(b, m.Type, m.TransactionID)
}

// decodeAny runs every value decoder on a; none may panic.
func decodeAny(a RawAttr, id TransactionID) {
	_, _ = ParseAddress(a.Value)
	_, _ = ParseXORAddress(a.Value, id)
	_, _, _ = ParseErrorCode(a.Value)
	_, _ = ParseUnknownAttributes(nil, a.Value)
	_, _ = ParsePasswordAlgorithms(nil, a.Value)
	_, _ = ParsePasswordAlgorithm(a.Value)
	_, _ = ParseText(a.Type, a.Value)
	_, _ = Uint32(a.Value)
	_, _ = Uint64(a.Value)
	_, _ = NonceFeatures(string(a.Value))
}

// roundTrip appends one attribute with add, parses the message and returns
// the value it reads back.
func roundTrip(t *testing.T, typ AttrType, add func([]byte) []byte) []byte {
	t.Helper()
	b := add(AppendHeader(nil, BindingSuccess, testID))
	var m Message
	if err := m.Parse(b); err != nil {
		t.Fatalf("encoded %v does not parse: %v (%x)", typ, err, b)
	}
	v, ok := m.Get(typ)
	if !ok {
		t.Fatalf("encoded %v is missing", typ)
	}
	return v
}

func FuzzParseAddress(f *testing.F) {
	for _, v := range seedAttrs(f, AttrMappedAddress, AttrAlternateServer) {
		f.Add(v)
	}
	f.Add([]byte{0, 1, 0x0d, 0x96, 192, 0, 2, 1})
	f.Add([]byte{0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1})
	f.Fuzz(func(t *testing.T, v []byte) {
		a, err := ParseAddress(v)
		if err != nil {
			return
		}
		if !a.IsValid() || (len(v) == 8) != a.Addr().Is4() {
			t.Fatalf("ParseAddress(%x) = %v", v, a)
		}
		w := roundTrip(t, AttrMappedAddress, func(b []byte) []byte { return AppendAddress(b, AttrMappedAddress, a) })
		got, err := ParseAddress(w)
		want := netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if err != nil || got != want {
			t.Fatalf("round trip of %v: %v, %v", a, got, err)
		}
		if !a.Addr().Is4In6() && !bytes.Equal(w[1:], v[1:]) {
			t.Fatalf("%x re-encoded as %x", v, w)
		}
	})
}

func FuzzParseXORAddress(f *testing.F) {
	for _, b := range seedMessages(f) {
		var m Message
		if m.Parse(b) != nil {
			continue
		}
		if v, ok := m.Get(AttrXORMappedAddress); ok {
			f.Add(bytes.Clone(v), m.TransactionID[:])
		}
	}
	f.Add([]byte{0, 2, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, testID[:])
	f.Fuzz(func(t *testing.T, v, idb []byte) {
		var id TransactionID
		copy(id[:], idb)
		a, err := ParseXORAddress(v, id)
		if err != nil {
			return
		}
		w := roundTrip(t, AttrXORMappedAddress, func(b []byte) []byte { return AppendXORAddress(b, AttrXORMappedAddress, a, id) })
		got, err := ParseXORAddress(w, id)
		want := netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if err != nil || got != want {
			t.Fatalf("round trip of %v: %v, %v", a, got, err)
		}
		if !a.Addr().Is4In6() && !bytes.Equal(w[1:], v[1:]) {
			t.Fatalf("%x re-encoded as %x", v, w)
		}
	})
}

func FuzzParseErrorCode(f *testing.F) {
	for _, v := range seedAttrs(f, AttrErrorCode) {
		f.Add(v)
	}
	f.Add([]byte{0, 0, 4, 1, 'U', 'n', 'a'})
	f.Add([]byte{0, 0, 5, 0, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, v []byte) {
		code, reason, err := ParseErrorCode(v)
		if err != nil {
			return
		}
		if code < 300 || code > 699 || len(reason) > 763 {
			t.Fatalf("ParseErrorCode(%x) = %d, %d-byte reason", v, code, len(reason))
		}
		w := roundTrip(t, AttrErrorCode, func(b []byte) []byte { return AppendErrorCode(b, code, string(reason)) })
		code2, reason2, err := ParseErrorCode(w)
		if err != nil || code2 != code {
			t.Fatalf("round trip of %d: %d, %v", code, code2, err)
		}
		want := string(reason)
		if want == "" {
			want = ReasonPhrase(code)
		}
		want = cutText(want, 127, 509)
		if string(reason2) != want {
			t.Fatalf("reason %q became %q", reason, reason2)
		}
		if utf8.Valid(reason) && !utf8.Valid(reason2) {
			t.Fatalf("cutting made %q invalid UTF-8", reason2)
		}
	})
}

func FuzzParseUnknownAttributes(f *testing.F) {
	for _, v := range seedAttrs(f, AttrUnknownAttributes) {
		f.Add(v)
	}
	f.Add([]byte{0x80, 0x22})
	f.Fuzz(func(t *testing.T, v []byte) {
		list, err := ParseUnknownAttributes(nil, v)
		if err != nil || len(v) > 0xfff0 {
			return
		}
		w := roundTrip(t, AttrUnknownAttributes, func(b []byte) []byte { return AppendUnknownAttributes(b, list) })
		if !bytes.Equal(w, v) {
			t.Fatalf("%x re-encoded as %x", v, w)
		}
		got, err := ParseUnknownAttributes(nil, w)
		if err != nil || !sameTypes(got, list) {
			t.Fatalf("round trip of %v: %v, %v", list, got, err)
		}
	})
}

func FuzzParsePasswordAlgorithms(f *testing.F) {
	for _, v := range seedAttrs(f, AttrPasswordAlgorithms, AttrPasswordAlgorithm) {
		f.Add(v)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		list, err := ParsePasswordAlgorithms(nil, v)
		if err != nil || len(v) > 0xfff0 {
			return
		}
		w := roundTrip(t, AttrPasswordAlgorithms, func(b []byte) []byte { return AppendPasswordAlgorithms(b, list) })
		if len(w) != len(v) {
			t.Fatalf("%d bytes re-encoded as %d", len(v), len(w))
		}
		got, err := ParsePasswordAlgorithms(nil, w)
		if err != nil || !sameAlgs(got, list) {
			t.Fatalf("round trip of %v: %v, %v", list, got, err)
		}
	})
}

func FuzzParsePasswordAlgorithm(f *testing.F) {
	for _, v := range seedAttrs(f, AttrPasswordAlgorithm) {
		f.Add(v)
	}
	f.Add([]byte{0, 2, 0, 0})
	f.Add([]byte{0, 2, 0, 1, 9, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		a, err := ParsePasswordAlgorithm(v)
		if err != nil || len(v) > 0xfff0 {
			return
		}
		w := roundTrip(t, AttrPasswordAlgorithm, func(b []byte) []byte { return AppendPasswordAlgorithm(b, a) })
		got, err := ParsePasswordAlgorithm(w)
		if err != nil || got.Algorithm != a.Algorithm || !bytes.Equal(got.Params, a.Params) || len(w) != len(v) {
			t.Fatalf("round trip of %v: %v (%x), %v", a, got, w, err)
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, t := range []AttrType{AttrUsername, AttrRealm, AttrNonce, AttrSoftware, AttrAlternateDomain} {
		for _, v := range seedAttrs(f, t) {
			f.Add(uint16(t), v)
		}
	}
	f.Add(uint16(AttrUsername), []byte("\xff"))
	f.Add(uint16(0x8123), []byte("free text"))
	f.Fuzz(func(t *testing.T, typ uint16, v []byte) {
		at := AttrType(typ)
		got, err := ParseText(at, v)
		if err != nil {
			return
		}
		if !utf8.Valid(got) || !bytes.Equal(got, v) {
			t.Fatalf("ParseText(%v, %q) = %q", at, v, got)
		}
		if max, ok := textLimits[at]; ok && len(v) > max {
			t.Fatalf("%v of %d bytes accepted", at, len(v))
		}
		if len(v) > 0xfff0 {
			return
		}
		b := AppendAttr(AppendHeader(nil, BindingRequest, testID), at, v)
		var m Message
		if err := m.Parse(b); err != nil {
			t.Fatal(err)
		}
		if s, err := m.Text(at); err != nil || s != string(v) {
			t.Fatalf("round trip of %v %q: %q, %v", at, v, s, err)
		}
	})
}

func FuzzUint(f *testing.F) {
	for _, v := range seedAttrs(f, AttrPriority, AttrICEControlled, AttrICEControlling, AttrFingerprint) {
		f.Add(v)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		if x, err := Uint32(v); err == nil {
			if w := roundTrip(t, AttrPriority, func(b []byte) []byte { return AppendUint32Attr(b, AttrPriority, x) }); !bytes.Equal(w, v) {
				t.Fatalf("%x re-encoded as %x", v, w)
			}
		} else if len(v) == 4 {
			t.Fatalf("Uint32(%x): %v", v, err)
		}
		if x, err := Uint64(v); err == nil {
			if w := roundTrip(t, AttrICEControlling, func(b []byte) []byte { return AppendUint64Attr(b, AttrICEControlling, x) }); !bytes.Equal(w, v) {
				t.Fatalf("%x re-encoded as %x", v, w)
			}
		} else if len(v) == 8 {
			t.Fatalf("Uint64(%x): %v", v, err)
		}
	})
}

func FuzzNonceFeatures(f *testing.F) {
	for _, v := range seedAttrs(f, AttrNonce) {
		f.Add(string(v))
	}
	f.Add("obMatJos2AAAB")
	f.Add("obMatJos2////rest")
	f.Add("obMatJos2AA==")
	f.Fuzz(func(t *testing.T, nonce string) {
		feat, ok := NonceFeatures(nonce)
		if !ok {
			return
		}
		if feat >= 1<<24 || len(nonce) < 13 {
			t.Fatalf("NonceFeatures(%q) = %x", nonce, feat)
		}
		enc := AppendNonceCookie(nil, feat)
		if string(enc) != nonce[:13] {
			t.Fatalf("features %06x of %q re-encoded as %q", feat, nonce, enc)
		}
		if again, ok := NonceFeatures(string(enc)); !ok || again != feat {
			t.Fatalf("round trip of %06x: %06x, %v", feat, again, ok)
		}
	})
}
