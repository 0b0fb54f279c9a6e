package turn

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

var testID = stun.TransactionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// attrValue builds a message with append, parses it with package stun and
// returns the value of attribute t, checking that the header length and
// padding are right.
func attrValue(tb testing.TB, t stun.AttrType, append func([]byte) []byte) []byte {
	tb.Helper()
	b := append(stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, testID))
	if len(b)%4 != 0 {
		tb.Fatalf("message of %d bytes is not padded", len(b))
	}
	var m stun.Message
	if err := m.Parse(b); err != nil {
		tb.Fatalf("Parse(%x): %v", b, err)
	}
	if len(m.Attrs) != 1 || m.Attrs[0].Type != t {
		tb.Fatalf("attributes %v, want one %s", m.Attrs, t)
	}
	return m.Attrs[0].Value
}

func hexBytes(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestAttrWire checks every Append function against the value bytes that
// RFC 8656, Section 18 (and RFC 6062, Section 6.2) lays out, written by
// hand.
func TestAttrWire(t *testing.T) {
	cases := []struct {
		name string
		typ  stun.AttrType
		f    func([]byte) []byte
		want string
	}{
		{"REQUESTED-TRANSPORT UDP", stun.AttrRequestedTransport, func(b []byte) []byte { return AppendRequestedTransport(b, ProtoUDP) }, "11000000"},
		{"REQUESTED-TRANSPORT TCP", stun.AttrRequestedTransport, func(b []byte) []byte { return AppendRequestedTransport(b, ProtoTCP) }, "06000000"},
		{"LIFETIME 777s", stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, 777*time.Second) }, "00000309"},
		{"LIFETIME 0", stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, 0) }, "00000000"},
		{"LIFETIME 1ns rounds up", stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, 1) }, "00000001"},
		{"LIFETIME 1.5s rounds up", stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, 1500*time.Millisecond) }, "00000002"},
		{"LIFETIME negative", stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, -time.Hour) }, "00000000"},
		{"LIFETIME clamps", stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, math.MaxInt64) }, "ffffffff"},
		{"CHANNEL-NUMBER", stun.AttrChannelNumber, func(b []byte) []byte { return AppendChannelNumber(b, 0x4abc) }, "4abc0000"},
		{"EVEN-PORT R", stun.AttrEvenPort, func(b []byte) []byte { return AppendEvenPort(b, true) }, "80"},
		{"EVEN-PORT", stun.AttrEvenPort, func(b []byte) []byte { return AppendEvenPort(b, false) }, "00"},
		{"RESERVATION-TOKEN", stun.AttrReservationToken, func(b []byte) []byte {
			return AppendReservationToken(b, [8]byte{1, 2, 3, 4, 5, 6, 7, 0xff})
		}, "01020304050607ff"},
		{"REQUESTED-ADDRESS-FAMILY IPv6", stun.AttrRequestedAddressFamily, func(b []byte) []byte { return AppendRequestedAddressFamily(b, FamilyIPv6) }, "02000000"},
		{"REQUESTED-ADDRESS-FAMILY IPv4", stun.AttrRequestedAddressFamily, func(b []byte) []byte { return AppendRequestedAddressFamily(b, FamilyIPv4) }, "01000000"},
		{"ADDITIONAL-ADDRESS-FAMILY", stun.AttrAdditionalAddressFamily, func(b []byte) []byte { return AppendAdditionalAddressFamily(b, FamilyIPv6) }, "02000000"},
		// Family, 11 reserved bits, class 4, number 40, reason.
		{"ADDRESS-ERROR-CODE", stun.AttrAddressErrorCode, func(b []byte) []byte {
			return AppendAddressErrorCode(b, FamilyIPv6, 440, "")
		}, "02000428" + hexString("Address Family not Supported")},
		{"ADDRESS-ERROR-CODE 508", stun.AttrAddressErrorCode, func(b []byte) []byte {
			return AppendAddressErrorCode(b, FamilyIPv4, 508, "full")
		}, "01000508" + hexString("full")},
		{"CONNECTION-ID", stun.AttrConnectionID, func(b []byte) []byte { return AppendConnectionID(b, 0xdeadbeef) }, "deadbeef"},
		// Reserved 16 bits, type 3, code 4, MTU 1280.
		{"ICMP", stun.AttrIcmp, func(b []byte) []byte { return AppendICMP(b, 3, 4, 1280) }, "0000030400000500"},
		{"ICMP v6 packet too big", stun.AttrIcmp, func(b []byte) []byte { return AppendICMP(b, 2, 0, 1400) }, "0000020000000578"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := attrValue(t, tc.typ, tc.f)
			if want := hexBytes(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("value %x, want %x", got, want)
			}
		})
	}
}

func hexString(s string) string { return hex.EncodeToString([]byte(s)) }

func TestRoundTrips(t *testing.T) {
	t.Run("REQUESTED-TRANSPORT", func(t *testing.T) {
		for _, p := range []uint8{0, ProtoTCP, ProtoUDP, 132, 255} {
			got, err := ParseRequestedTransport(attrValue(t, stun.AttrRequestedTransport, func(b []byte) []byte { return AppendRequestedTransport(b, p) }))
			if err != nil || got != p {
				t.Fatalf("%d: got %d, %v", p, got, err)
			}
		}
	})
	t.Run("LIFETIME", func(t *testing.T) {
		for _, d := range []time.Duration{0, time.Second, 600 * time.Second, time.Hour, math.MaxUint32 * time.Second} {
			got, err := ParseLifetime(attrValue(t, stun.AttrLifetime, func(b []byte) []byte { return AppendLifetime(b, d) }))
			if err != nil || got != d {
				t.Fatalf("%v: got %v, %v", d, got, err)
			}
		}
	})
	t.Run("CHANNEL-NUMBER", func(t *testing.T) {
		for _, ch := range []uint16{0, MinChannel, 0x4525, MaxChannel, MaxChannelLoose, 0xFFFF} {
			got, err := ParseChannelNumber(attrValue(t, stun.AttrChannelNumber, func(b []byte) []byte { return AppendChannelNumber(b, ch) }))
			if err != nil || got != ch {
				t.Fatalf("%#04x: got %#04x, %v", ch, got, err)
			}
		}
	})
	t.Run("EVEN-PORT", func(t *testing.T) {
		for _, r := range []bool{false, true} {
			got, err := ParseEvenPort(attrValue(t, stun.AttrEvenPort, func(b []byte) []byte { return AppendEvenPort(b, r) }))
			if err != nil || got != r {
				t.Fatalf("%v: got %v, %v", r, got, err)
			}
		}
	})
	t.Run("RESERVATION-TOKEN", func(t *testing.T) {
		for _, tok := range [][8]byte{{}, {1, 2, 3, 4, 5, 6, 7, 8}, {0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0}} {
			got, err := ParseReservationToken(attrValue(t, stun.AttrReservationToken, func(b []byte) []byte { return AppendReservationToken(b, tok) }))
			if err != nil || got != tok {
				t.Fatalf("%x: got %x, %v", tok, got, err)
			}
		}
	})
	t.Run("CONNECTION-ID", func(t *testing.T) {
		for _, id := range []uint32{0, 1, 0x80000000, math.MaxUint32} {
			got, err := ParseConnectionID(attrValue(t, stun.AttrConnectionID, func(b []byte) []byte { return AppendConnectionID(b, id) }))
			if err != nil || got != id {
				t.Fatalf("%d: got %d, %v", id, got, err)
			}
		}
	})
	t.Run("ICMP", func(t *testing.T) {
		for _, c := range []struct {
			typ, code uint8
			data      uint32
		}{{0, 0, 0}, {3, 4, 1500}, {11, 0, 0}, {255, 255, math.MaxUint32}} {
			typ, code, data, err := ParseICMP(attrValue(t, stun.AttrIcmp, func(b []byte) []byte { return AppendICMP(b, c.typ, c.code, c.data) }))
			if err != nil || typ != c.typ || code != c.code || data != c.data {
				t.Fatalf("%v: got %d %d %d, %v", c, typ, code, data, err)
			}
		}
	})
	t.Run("REQUESTED-ADDRESS-FAMILY", func(t *testing.T) {
		for _, f := range []Family{FamilyIPv4, FamilyIPv6} {
			got, err := ParseRequestedAddressFamily(attrValue(t, stun.AttrRequestedAddressFamily, func(b []byte) []byte { return AppendRequestedAddressFamily(b, f) }))
			if err != nil || got != f {
				t.Fatalf("%s: got %s, %v", f, got, err)
			}
		}
	})
	t.Run("ADDITIONAL-ADDRESS-FAMILY", func(t *testing.T) {
		got, err := ParseAdditionalAddressFamily(attrValue(t, stun.AttrAdditionalAddressFamily, func(b []byte) []byte { return AppendAdditionalAddressFamily(b, FamilyIPv6) }))
		if err != nil || got != FamilyIPv6 {
			t.Fatalf("got %s, %v", got, err)
		}
	})
	t.Run("ADDRESS-ERROR-CODE", func(t *testing.T) {
		long := strings.Repeat("é", 200) // cut to 127 characters like ERROR-CODE
		for _, c := range []struct {
			f          Family
			code       int
			reason     string
			wantReason string
		}{
			{FamilyIPv4, 440, "", "Address Family not Supported"},
			{FamilyIPv6, 508, "", "Insufficient Capacity"},
			{FamilyIPv6, 699, "x", "x"},
			{FamilyIPv4, 300, long, strings.Repeat("é", 127)},
		} {
			f, code, reason, err := ParseAddressErrorCode(attrValue(t, stun.AttrAddressErrorCode, func(b []byte) []byte {
				return AppendAddressErrorCode(b, c.f, c.code, c.reason)
			}))
			if err != nil || f != c.f || code != c.code || string(reason) != c.wantReason {
				t.Fatalf("%v: got %s %d %q, %v", c, f, code, reason, err)
			}
		}
	})
}

// TestAppendAddressErrorCodeInMessage checks that the ERROR-CODE reuse
// leaves neighbouring attributes and the header length intact.
func TestAppendAddressErrorCodeInMessage(t *testing.T) {
	b := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassSuccess}, testID)
	b = AppendLifetime(b, 600*time.Second)
	b = AppendAddressErrorCode(b, FamilyIPv6, 440, "no v6")
	b = stun.AppendErrorCode(b, 400, "plain")
	b = stun.AppendFingerprint(b)
	var m stun.Message
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckFingerprint(); err != nil {
		t.Fatal(err)
	}
	v, ok := m.Get(stun.AttrAddressErrorCode)
	if !ok {
		t.Fatal("no ADDRESS-ERROR-CODE")
	}
	if f, code, reason, err := ParseAddressErrorCode(v); err != nil || f != FamilyIPv6 || code != 440 || string(reason) != "no v6" {
		t.Fatalf("ADDRESS-ERROR-CODE = %s %d %q %v", f, code, reason, err)
	}
	if code, reason, err := m.ErrorCode(); err != nil || code != 400 || reason != "plain" {
		t.Fatalf("ERROR-CODE = %d %q %v", code, reason, err)
	}
}

// TestParseIgnoresReserved checks that RFFU and reserved bits set by a
// sender are ignored on reception, as RFC 8656, Section 18 requires.
func TestParseIgnoresReserved(t *testing.T) {
	if p, err := ParseRequestedTransport([]byte{17, 0xff, 0xff, 0xff}); err != nil || p != ProtoUDP {
		t.Errorf("REQUESTED-TRANSPORT with RFFU set: %d, %v", p, err)
	}
	if ch, err := ParseChannelNumber([]byte{0x40, 0x01, 0xff, 0xff}); err != nil || ch != 0x4001 {
		t.Errorf("CHANNEL-NUMBER with RFFU set: %#04x, %v", ch, err)
	}
	if r, err := ParseEvenPort([]byte{0x7f}); err != nil || r {
		t.Errorf("EVEN-PORT 0x7f: %v, %v", r, err)
	}
	if r, err := ParseEvenPort([]byte{0xff}); err != nil || !r {
		t.Errorf("EVEN-PORT 0xff: %v, %v", r, err)
	}
	if f, err := ParseRequestedAddressFamily([]byte{2, 1, 2, 3}); err != nil || f != FamilyIPv6 {
		t.Errorf("REQUESTED-ADDRESS-FAMILY with RFFU set: %s, %v", f, err)
	}
	if f, err := ParseAdditionalAddressFamily([]byte{2, 1, 2, 3}); err != nil || f != FamilyIPv6 {
		t.Errorf("ADDITIONAL-ADDRESS-FAMILY with RFFU set: %s, %v", f, err)
	}
	if typ, code, data, err := ParseICMP([]byte{0xff, 0xff, 1, 2, 0, 0, 0, 3}); err != nil || typ != 1 || code != 2 || data != 3 {
		t.Errorf("ICMP with reserved set: %d %d %d, %v", typ, code, data, err)
	}
	if f, code, _, err := ParseAddressErrorCode([]byte{1, 0xff, 0xfc, 0}); err != nil || f != FamilyIPv4 || code != 400 {
		t.Errorf("ADDRESS-ERROR-CODE with reserved set: %s %d, %v", f, code, err)
	}
}

func TestParseBadLengths(t *testing.T) {
	parsers := []struct {
		name string
		ok   int // the one valid length (-1: a minimum, see below)
		f    func([]byte) error
	}{
		{"REQUESTED-TRANSPORT", 4, func(v []byte) error { _, err := ParseRequestedTransport(v); return err }},
		{"LIFETIME", 4, func(v []byte) error { _, err := ParseLifetime(v); return err }},
		{"CHANNEL-NUMBER", 4, func(v []byte) error { _, err := ParseChannelNumber(v); return err }},
		{"EVEN-PORT", 1, func(v []byte) error { _, err := ParseEvenPort(v); return err }},
		{"RESERVATION-TOKEN", 8, func(v []byte) error { _, err := ParseReservationToken(v); return err }},
		{"CONNECTION-ID", 4, func(v []byte) error { _, err := ParseConnectionID(v); return err }},
		{"ICMP", 8, func(v []byte) error { _, _, _, err := ParseICMP(v); return err }},
		{"REQUESTED-ADDRESS-FAMILY", 4, func(v []byte) error {
			v = bytes.Clone(v)
			if len(v) > 0 {
				v[0] = 1
			}
			_, err := ParseRequestedAddressFamily(v)
			return err
		}},
		{"ADDITIONAL-ADDRESS-FAMILY", 4, func(v []byte) error {
			v = bytes.Clone(v)
			if len(v) > 0 {
				v[0] = 2
			}
			_, err := ParseAdditionalAddressFamily(v)
			return err
		}},
	}
	for _, p := range parsers {
		t.Run(p.name, func(t *testing.T) {
			for n := 0; n <= 12; n++ {
				err := p.f(make([]byte, n))
				if n == p.ok {
					if err != nil {
						t.Errorf("length %d: %v", n, err)
					}
					continue
				}
				if !errors.Is(err, stun.ErrMalformed) {
					t.Errorf("length %d: err = %v, want stun.ErrMalformed", n, err)
				}
			}
		})
	}
	t.Run("ADDRESS-ERROR-CODE", func(t *testing.T) {
		for n := 0; n < 4; n++ {
			if _, _, _, err := ParseAddressErrorCode(make([]byte, n)); !errors.Is(err, stun.ErrMalformed) {
				t.Errorf("length %d: err = %v", n, err)
			}
		}
		long := append([]byte{1, 0, 4, 0}, make([]byte, 764)...)
		if _, _, _, err := ParseAddressErrorCode(long); !errors.Is(err, stun.ErrMalformed) {
			t.Errorf("reason of 764 bytes: err = %v", err)
		}
	})
}

func TestParseBadValues(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"REQUESTED-ADDRESS-FAMILY 0", second(ParseRequestedAddressFamily([]byte{0, 0, 0, 0})), ErrUnsupportedFamily},
		{"REQUESTED-ADDRESS-FAMILY 3", second(ParseRequestedAddressFamily([]byte{3, 0, 0, 0})), ErrUnsupportedFamily},
		{"ADDITIONAL-ADDRESS-FAMILY IPv4", second(ParseAdditionalAddressFamily([]byte{1, 0, 0, 0})), stun.ErrMalformed},
		{"ADDITIONAL-ADDRESS-FAMILY 0", second(ParseAdditionalAddressFamily([]byte{0, 0, 0, 0})), stun.ErrMalformed},
		{"ADDRESS-ERROR-CODE family 0", fourth(ParseAddressErrorCode([]byte{0, 0, 4, 40})), stun.ErrMalformed},
		{"ADDRESS-ERROR-CODE family 3", fourth(ParseAddressErrorCode([]byte{3, 0, 4, 40})), stun.ErrMalformed},
		{"ADDRESS-ERROR-CODE class 2", fourth(ParseAddressErrorCode([]byte{1, 0, 2, 0})), stun.ErrMalformed},
		{"ADDRESS-ERROR-CODE class 7", fourth(ParseAddressErrorCode([]byte{1, 0, 7, 0})), stun.ErrMalformed},
		{"ADDRESS-ERROR-CODE number 100", fourth(ParseAddressErrorCode([]byte{1, 0, 4, 100})), stun.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", tc.err, tc.wantErr)
			}
		})
	}
	// An unsupported family is still returned, for the log line.
	if f, _ := ParseRequestedAddressFamily([]byte{3, 0, 0, 0}); f != 3 || f.Valid() || f.String() != "family 0x03" {
		t.Errorf("unsupported family returned as %v", f)
	}
}

func second[T any](_ T, err error) error { return err }

func fourth[A, B, C any](_ A, _ B, _ C, err error) error { return err }

func TestFamilyString(t *testing.T) {
	if FamilyIPv4.String() != "IPv4" || FamilyIPv6.String() != "IPv6" || !FamilyIPv4.Valid() || !FamilyIPv6.Valid() || Family(0).Valid() {
		t.Fatal("Family names or validity wrong")
	}
}
