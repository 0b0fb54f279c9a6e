package stun

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestErrorCode(t *testing.T) {
	cases := []struct {
		code       int
		reason     string
		wantReason string
	}{
		{300, "", "Try Alternate"},
		{400, "", "Bad Request"},
		{401, "", "Unauthorized"},
		{420, "", "Unknown Attribute"},
		{438, "", "Stale Nonce"},
		{486, "", "Allocation Quota Reached"},
		{500, "custom", "custom"},
		{599, "", ""},
		{699, "x", "x"},
		{442, "ünïcödé", "ünïcödé"},
	}
	for _, tc := range cases {
		t.Run(tc.wantReason, func(t *testing.T) {
			b := AppendHeader(nil, BindingError, testID)
			b = AppendErrorCode(b, tc.code, tc.reason)
			m := mustParse(t, b)
			code, reason, err := m.ErrorCode()
			if err != nil || code != tc.code || reason != tc.wantReason {
				t.Fatalf("ErrorCode = %d %q, %v; want %d %q", code, reason, err, tc.code, tc.wantReason)
			}
			// Wire layout: 21 reserved zero bits, class, number.
			v := must(m.Get(AttrErrorCode))
			if v[0] != 0 || v[1] != 0 || int(v[2]) != tc.code/100 || int(v[3]) != tc.code%100 {
				t.Fatalf("ERROR-CODE value %x", v)
			}
		})
	}
}

func TestParseErrorCode(t *testing.T) {
	cases := []struct {
		name     string
		v        []byte
		wantCode int
		wantErr  bool
	}{
		{"400", []byte{0, 0, 4, 0}, 400, false},
		{"699", []byte{0, 0, 6, 99}, 699, false},
		{"300", []byte{0, 0, 3, 0}, 300, false},
		{"reserved bits ignored", []byte{0xff, 0xff, 0xf8 | 4, 38}, 438, false},
		{"class 0", []byte{0, 0, 0, 0}, 0, true},
		{"class 1", []byte{0, 0, 1, 0}, 0, true},
		{"class 2", []byte{0, 0, 2, 99}, 0, true},
		{"class 7", []byte{0, 0, 7, 0}, 0, true},
		{"number 100", []byte{0, 0, 4, 100}, 0, true},
		{"number 255", []byte{0, 0, 4, 255}, 0, true},
		{"3 bytes", []byte{0, 0, 4}, 0, true},
		{"empty", nil, 0, true},
		{"reason of 763 bytes", append([]byte{0, 0, 4, 0}, strings.Repeat("a", 763)...), 400, false},
		{"reason of 764 bytes", append([]byte{0, 0, 4, 0}, strings.Repeat("a", 764)...), 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, err := ParseErrorCode(tc.v)
			if (err != nil) != tc.wantErr || code != tc.wantCode {
				t.Fatalf("ParseErrorCode(%x) = %d, %v", tc.v, code, err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if err == nil && !bytes.Equal(reason, tc.v[4:]) {
				t.Fatalf("reason %q", reason)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		m := mustParse(t, AppendHeader(nil, BindingError, testID))
		if _, _, err := m.ErrorCode(); !errors.Is(err, ErrAttrNotFound) {
			t.Fatalf("ErrorCode = %v", err)
		}
	})
}

func TestErrorCodeReasonLimit(t *testing.T) {
	// Fewer than 128 characters, at most 509 bytes, cut at a character
	// boundary. RFC 8489, Section 14.8.
	for _, tc := range []struct {
		name      string
		reason    string
		wantChars int
	}{
		{"ASCII", strings.Repeat("a", 600), 127},
		{"2-byte characters", strings.Repeat("é", 200), 127},
		{"4-byte characters", strings.Repeat("𝄞", 200), 127},
		{"127 characters kept", strings.Repeat("b", 127), 127},
		{"short kept", "short", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendErrorCode(AppendHeader(nil, BindingError, testID), 500, tc.reason)
			_, reason, err := mustParse(t, b).ErrorCode()
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) != tc.wantChars ||
				len(reason) > 509 || !strings.HasPrefix(tc.reason, reason) {
				t.Fatalf("reason of %d bytes, %d characters", len(reason), utf8.RuneCountInString(reason))
			}
		})
	}
	t.Run("byte limit", func(t *testing.T) {
		if got := cutText(strings.Repeat("𝄞", 10), 100, 10); got != "𝄞𝄞" {
			t.Fatalf("cutText = %q", got)
		}
		if got := cutText("aé", 100, 2); got != "a" {
			t.Fatalf("cutText = %q", got)
		}
	})
}

func TestErrorType(t *testing.T) {
	var err error = &Error{Code: 401, Reason: "Unauthorized"}
	if err.Error() != "stun: error response 401 Unauthorized" {
		t.Fatalf("Error() = %q", err.Error())
	}
	if s := (&Error{Code: 500}).Error(); s != "stun: error response 500" {
		t.Fatalf("Error() = %q", s)
	}
	var se *Error
	if !errors.As(errors.Join(errors.New("x"), err), &se) || se.Code != 401 {
		t.Fatal("errors.As did not find *Error")
	}
	for _, code := range []int{300, 400, 401, 403, 405, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 487, 500, 508} {
		if ReasonPhrase(code) == "" {
			t.Errorf("no reason phrase for %d", code)
		}
	}
}

func TestUnknownAttributes(t *testing.T) {
	for _, list := range [][]AttrType{
		{},
		{0x0030},
		{0x0030, 0x7fff},
		{0x0030, 0x0031, 0x0032},
		{0x0001, 0x0002, 0x0003, 0x0004, 0x0005},
	} {
		b := AppendUnknownAttributes(AppendHeader(nil, BindingError, testID), list)
		b = AppendUint32Attr(b, AttrPriority, 7) // must follow the padding
		m := mustParse(t, b)
		v := must(m.Get(AttrUnknownAttributes))
		if len(v) != 2*len(list) {
			t.Fatalf("%v: value of %d bytes", list, len(v))
		}
		got, err := ParseUnknownAttributes([]AttrType{0x9999}, v)
		if err != nil || !sameTypes(got, append([]AttrType{0x9999}, list...)) {
			t.Fatalf("%v: parsed %v, %v", list, got, err)
		}
		if p, _ := Uint32(must(m.Get(AttrPriority))); p != 7 {
			t.Fatalf("%v: PRIORITY after it = %d", list, p)
		}
	}
	if _, err := ParseUnknownAttributes(nil, []byte{0, 1, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("odd length: %v", err)
	}
}

func TestPasswordAlgorithms(t *testing.T) {
	std := []PasswordAlgorithmParams{{Algorithm: PasswordMD5}, {Algorithm: PasswordSHA256}}
	b := AppendPasswordAlgorithms(AppendHeader(nil, BindingError, testID), std)
	m := mustParse(t, b)
	v := must(m.Get(AttrPasswordAlgorithms))
	if got := hex.EncodeToString(v); got != "0001000000020000" {
		t.Fatalf("PASSWORD-ALGORITHMS value %s", got)
	}

	lists := map[string][]PasswordAlgorithmParams{
		"empty":     {},
		"MD5 first": {{Algorithm: PasswordMD5}, {Algorithm: PasswordSHA256}},
		"with params": {
			{Algorithm: 0x1234, Params: []byte{1}},
			{Algorithm: PasswordSHA256},
			{Algorithm: 0x00ff, Params: []byte{1, 2, 3}},
			{Algorithm: 0x0100, Params: []byte{1, 2, 3, 4}},
			{Algorithm: 0x0101, Params: []byte{1, 2, 3, 4, 5}},
		},
	}
	for name, list := range lists {
		t.Run(name, func(t *testing.T) {
			b := AppendPasswordAlgorithms(AppendHeader(nil, BindingError, testID), list)
			b = AppendPasswordAlgorithm(b, PasswordAlgorithmParams{Algorithm: PasswordSHA256, Params: []byte("xyz")})
			m := mustParse(t, b)
			got, err := ParsePasswordAlgorithms(nil, must(m.Get(AttrPasswordAlgorithms)))
			if err != nil || !sameAlgs(got, list) {
				t.Fatalf("PASSWORD-ALGORITHMS = %v, %v; want %v", got, err, list)
			}
			one, err := ParsePasswordAlgorithm(must(m.Get(AttrPasswordAlgorithm)))
			if err != nil || one.Algorithm != PasswordSHA256 || string(one.Params) != "xyz" {
				t.Fatalf("PASSWORD-ALGORITHM = %v, %v", one, err)
			}
		})
	}

	for _, tc := range []struct {
		name string
		v    string
	}{
		{"short entry", "000100"},
		{"params past the end", "0001000400"},
		{"params padding past the end", "00010001aa"},
		{"second entry short", "00010000ff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := hex.DecodeString(tc.v)
			if _, err := ParsePasswordAlgorithms(nil, v); err == nil {
				t.Fatalf("ParsePasswordAlgorithms(%s) succeeded", tc.v)
			}
			if _, err := ParsePasswordAlgorithm(v); err == nil {
				t.Fatalf("ParsePasswordAlgorithm(%s) succeeded", tc.v)
			}
		})
	}
	if _, err := ParsePasswordAlgorithm([]byte{0, 2, 0, 0, 0, 1, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("PASSWORD-ALGORITHM with a second entry: %v", err)
	}
	if PasswordSHA256.String() != "SHA-256" || PasswordMD5.String() != "MD5" || PasswordAlgorithm(9).String() != "PasswordAlgorithm(0x0009)" {
		t.Fatal("PasswordAlgorithm.String")
	}
}

func sameAlgs(a, b []PasswordAlgorithmParams) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Algorithm != b[i].Algorithm || !bytes.Equal(a[i].Params, b[i].Params) {
			return false
		}
	}
	return true
}

func TestUserhash(t *testing.T) {
	got, err := Userhash("user", "realm")
	if want := sha256.Sum256([]byte("user:realm")); err != nil || got != want {
		t.Fatalf("Userhash = %x, %v; want %x", got, err, want)
	}
	// RFC 8489, Appendix B.1.
	got, err = Userhash("マトリックス", "example.org")
	if err != nil || hex.EncodeToString(got[:]) != "4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704" {
		t.Fatalf("Userhash(B.1) = %x, %v", got, err)
	}
	// The realm goes through OpaqueString: a no-break space becomes a space.
	got, err = Userhash("user", "my\u00a0realm")
	if want := sha256.Sum256([]byte("user:my realm")); err != nil || got != want {
		t.Fatalf("Userhash with NBSP = %x, %v", got, err)
	}
	if _, err := Userhash("user", "bad\u00adrealm"); err == nil {
		t.Fatal("Userhash accepted a realm OpaqueString rejects")
	}
	// As an attribute.
	b := AppendAttr(AppendHeader(nil, BindingRequest, testID), AttrUserhash, got[:])
	if v := must(mustParse(t, b).Get(AttrUserhash)); !bytes.Equal(v, got[:]) {
		t.Fatalf("USERHASH = %x", v)
	}
}

func TestText(t *testing.T) {
	cases := []struct {
		t       AttrType
		v       string
		wantErr bool
	}{
		{AttrUsername, "evtj:h6vY", false},
		{AttrUsername, "", false},
		{AttrUsername, strings.Repeat("u", 508), false},
		// RFC 8489, Section 14.3: senders use fewer than 509 bytes, but
		// receivers must accept up to 763 (RFC 5389 compatibility).
		{AttrUsername, strings.Repeat("u", 509), false},
		{AttrUsername, strings.Repeat("u", 763), false},
		{AttrUsername, strings.Repeat("u", 764), true},
		{AttrUsername, strings.Repeat("u", 1000), true},
		{AttrUsername, "bad\xff", true},
		{AttrUsername, "\xc3", true},         // truncated sequence
		{AttrUsername, "\xed\xa0\x80", true}, // surrogate
		{AttrRealm, strings.Repeat("r", 763), false},
		{AttrRealm, strings.Repeat("r", 764), true},
		{AttrRealm, "\xfe", true},
		{AttrNonce, strings.Repeat("n", 763), false},
		{AttrNonce, strings.Repeat("n", 764), true},
		{AttrSoftware, strings.Repeat("s", 763), false},
		{AttrSoftware, strings.Repeat("s", 764), true},
		{AttrAlternateDomain, strings.Repeat("d", 255), false},
		{AttrAlternateDomain, strings.Repeat("d", 256), true},
		{AttrAlternateDomain, "stun.example.org", false},
		{0x8123, strings.Repeat("x", 2000), false}, // no limit known: UTF-8 only
		{0x8123, "\x80", true},
	}
	for _, tc := range cases {
		t.Run(tc.t.String(), func(t *testing.T) {
			v, err := ParseText(tc.t, []byte(tc.v))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseText(%v, %d bytes) = %v", tc.t, len(tc.v), err)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				return
			}
			if string(v) != tc.v {
				t.Fatal("ParseText changed the value")
			}
			b := AppendAttrString(AppendHeader(nil, BindingRequest, testID), tc.t, tc.v)
			if s, err := mustParse(t, b).Text(tc.t); err != nil || s != tc.v {
				t.Fatalf("Text = %d bytes, %v", len(s), err)
			}
		})
	}
	t.Run("accessors", func(t *testing.T) {
		b := AppendHeader(nil, BindingRequest, testID)
		b = AppendAttrString(b, AttrUsername, "u")
		b = AppendAttrString(b, AttrRealm, "r")
		b = AppendAttrString(b, AttrNonce, "n")
		b = AppendAttrString(b, AttrSoftware, "s")
		b = AppendAttrString(b, AttrAlternateDomain, "d")
		m := mustParse(t, b)
		for _, f := range []struct {
			get  func() (string, error)
			want string
		}{{m.Username, "u"}, {m.Realm, "r"}, {m.Nonce, "n"}, {m.Software, "s"}, {m.AlternateDomain, "d"}} {
			if got, err := f.get(); err != nil || got != f.want {
				t.Fatalf("got %q, %v; want %q", got, err, f.want)
			}
		}
		var empty Message
		if _, err := empty.Realm(); !errors.Is(err, ErrAttrNotFound) {
			t.Fatalf("missing REALM: %v", err)
		}
		bad := mustParse(t, AppendAttrString(AppendHeader(nil, BindingRequest, testID), AttrUsername, "\xff"))
		if _, err := bad.Username(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("non-UTF-8 USERNAME: %v", err)
		}
	})
}

func TestAddresses(t *testing.T) {
	cases := []struct {
		name    string
		in      netip.AddrPort
		want    netip.AddrPort
		wantLen int
		family  byte
	}{
		{"IPv4", netip.MustParseAddrPort("192.0.2.1:32853"), netip.MustParseAddrPort("192.0.2.1:32853"), 8, FamilyIPv4},
		{"IPv4 port 0", netip.MustParseAddrPort("10.0.0.1:0"), netip.MustParseAddrPort("10.0.0.1:0"), 8, FamilyIPv4},
		{"IPv4 port 65535", netip.MustParseAddrPort("255.255.255.255:65535"), netip.MustParseAddrPort("255.255.255.255:65535"), 8, FamilyIPv4},
		{"IPv6", netip.MustParseAddrPort("[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
			netip.MustParseAddrPort("[2001:db8:1234:5678:11:2233:4455:6677]:32853"), 20, FamilyIPv6},
		{"IPv6 loopback", netip.MustParseAddrPort("[::1]:3478"), netip.MustParseAddrPort("[::1]:3478"), 20, FamilyIPv6},
		{"IPv4-mapped is written as IPv4", netip.MustParseAddrPort("[::ffff:198.51.100.7]:5000"),
			netip.MustParseAddrPort("198.51.100.7:5000"), 8, FamilyIPv4},
		{"zone dropped", netip.MustParseAddrPort("[fe80::1%eth0]:9"), netip.MustParseAddrPort("[fe80::1]:9"), 20, FamilyIPv6},
		{"zero AddrPort does not panic", netip.AddrPort{}, netip.MustParseAddrPort("0.0.0.0:0"), 8, FamilyIPv4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, typ := range []AttrType{AttrMappedAddress, AttrAlternateServer, AttrResponseOrigin, AttrOtherAddress} {
				b := AppendAddress(AppendHeader(nil, BindingSuccess, testID), typ, tc.in)
				m := mustParse(t, b)
				v := must(m.Get(typ))
				if len(v) != tc.wantLen || v[0] != 0 || v[1] != tc.family {
					t.Fatalf("%v value %x", typ, v)
				}
				if got, err := m.Address(typ); err != nil || got != tc.want {
					t.Fatalf("%v = %v, %v; want %v", typ, got, err, tc.want)
				}
			}
			for _, typ := range []AttrType{AttrXORMappedAddress, AttrXORPeerAddress, AttrXORRelayedAddress} {
				b := AppendXORAddress(AppendHeader(nil, BindingSuccess, testID), typ, tc.in, testID)
				m := mustParse(t, b)
				v := must(m.Get(typ))
				if len(v) != tc.wantLen || v[1] != tc.family {
					t.Fatalf("%v value %x", typ, v)
				}
				if got, err := m.XORAddress(typ); err != nil || got != tc.want {
					t.Fatalf("%v = %v, %v; want %v", typ, got, err, tc.want)
				}
				// The XOR really happened: port against the cookie's top half.
				if xport := uint16(v[2])<<8 | uint16(v[3]); xport != tc.want.Port()^0x2112 {
					t.Fatalf("X-Port 0x%04x", xport)
				}
			}
		})
	}

	t.Run("IPv6 XOR uses the transaction ID", func(t *testing.T) {
		a := netip.MustParseAddrPort("[2001:db8::1]:1")
		v1 := must(mustParse(t, AppendXORAddress(AppendHeader(nil, BindingSuccess, testID), AttrXORMappedAddress, a, testID)).Get(AttrXORMappedAddress))
		other := TransactionID{0xff}
		v2 := must(mustParse(t, AppendXORAddress(AppendHeader(nil, BindingSuccess, other), AttrXORMappedAddress, a, other)).Get(AttrXORMappedAddress))
		if bytes.Equal(v1, v2) {
			t.Fatal("X-Address does not depend on the transaction ID")
		}
		if got, err := ParseXORAddress(v2, other); err != nil || got != a {
			t.Fatalf("ParseXORAddress = %v, %v", got, err)
		}
	})

	t.Run("accessors", func(t *testing.T) {
		xor := netip.MustParseAddrPort("203.0.113.5:1000")
		plain := netip.MustParseAddrPort("203.0.113.6:2000")
		b := AppendHeader(nil, BindingSuccess, testID)
		b = AppendAddress(b, AttrMappedAddress, plain)
		b = AppendXORAddress(b, AttrXORMappedAddress, xor, testID)
		m := mustParse(t, b)
		if got, err := m.XORMappedAddress(); err != nil || got != xor {
			t.Fatalf("XORMappedAddress = %v, %v", got, err)
		}
		if got, err := m.MappedAddress(); err != nil || got != plain {
			t.Fatalf("MappedAddress = %v, %v", got, err)
		}
		if got, err := m.ReflexiveAddress(); err != nil || got != xor {
			t.Fatalf("ReflexiveAddress = %v, %v; want XOR-MAPPED-ADDRESS", got, err)
		}
		// An RFC 3489 server sends only MAPPED-ADDRESS.
		classic := mustParse(t, AppendAddress(AppendClassicHeader(nil, BindingSuccess, 1, testID), AttrMappedAddress, plain))
		if got, err := classic.ReflexiveAddress(); err != nil || got != plain {
			t.Fatalf("classic ReflexiveAddress = %v, %v", got, err)
		}
		var empty Message
		if _, err := empty.ReflexiveAddress(); !errors.Is(err, ErrAttrNotFound) {
			t.Fatalf("no address: %v", err)
		}
		if _, err := empty.XORMappedAddress(); !errors.Is(err, ErrAttrNotFound) {
			t.Fatalf("no address: %v", err)
		}
	})

	t.Run("ALTERNATE-SERVER and ALTERNATE-DOMAIN", func(t *testing.T) {
		// A 300 Try Alternate. RFC 8489, Sections 10, 14.15 and 14.16.
		alt := netip.MustParseAddrPort("[2001:db8::3478]:5349")
		b := AppendHeader(nil, BindingError, testID)
		b = AppendErrorCode(b, CodeTryAlternate, "")
		b = AppendAddress(b, AttrAlternateServer, alt)
		b = AppendAttrString(b, AttrAlternateDomain, "turn.example.net")
		b = AppendFingerprint(b)
		m := mustParse(t, b)
		if got, err := m.Address(AttrAlternateServer); err != nil || got != alt {
			t.Fatalf("ALTERNATE-SERVER = %v, %v", got, err)
		}
		if got, err := m.AlternateDomain(); err != nil || got != "turn.example.net" {
			t.Fatalf("ALTERNATE-DOMAIN = %q, %v", got, err)
		}
		if code, _, _ := m.ErrorCode(); code != 300 {
			t.Fatalf("code %d", code)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			v    string
		}{
			{"empty", ""},
			{"3 bytes", "000100"},
			{"family 0", "0000000001020304"},
			{"family 3", "0003000001020304"},
			{"IPv4 with 16 address bytes", "00010000" + strings.Repeat("00", 16)},
			{"IPv6 with 4 address bytes", "0002000001020304"},
			{"IPv4 with 5 address bytes", "000100000102030405"},
		} {
			v, _ := hex.DecodeString(tc.v)
			if a, err := ParseAddress(v); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: ParseAddress = %v, %v", tc.name, a, err)
			}
			if a, err := ParseXORAddress(v, testID); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: ParseXORAddress = %v, %v", tc.name, a, err)
			}
		}
	})
}

func TestUintAttrs(t *testing.T) {
	b := AppendHeader(nil, BindingRequest, testID)
	b = AppendUint32Attr(b, AttrPriority, 0x6e0001ff)
	b = AppendUint64Attr(b, AttrICEControlled, 0x932ff9b151263b36)
	m := mustParse(t, b)
	if v, err := Uint32(must(m.Get(AttrPriority))); err != nil || v != 0x6e0001ff {
		t.Fatalf("PRIORITY = %x, %v", v, err)
	}
	if v, err := Uint64(must(m.Get(AttrICEControlled))); err != nil || v != 0x932ff9b151263b36 {
		t.Fatalf("ICE-CONTROLLED = %x, %v", v, err)
	}
	for _, n := range []int{0, 3, 5, 8} {
		if _, err := Uint32(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Uint32 of %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, 4, 7, 9} {
		if _, err := Uint64(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Uint64 of %d bytes: %v", n, err)
		}
	}
}
