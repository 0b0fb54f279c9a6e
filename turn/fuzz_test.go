package turn

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Fuzz targets for every parser of the package. Each checks that bad input
// gives an error rather than a panic, and that what parses survives
// parse -> append -> parse unchanged. Run one with
//
//	go test -run='^$' -fuzz='^FuzzParseChannelData$' -fuzztime=20s ./turn/
//
// or all of them with scripts/fuzz.sh 20s turn.

func FuzzParseChannelData(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x40, 0x01, 0x00, 0x00})
	f.Add(AppendChannelData(nil, 0x4001, []byte("hello"), false))
	f.Add(AppendChannelData(nil, 0x4FFF, []byte("hello"), true))
	f.Add(AppendChannelData(nil, 0x7FFF, []byte("12345678"), false))
	f.Add(append(AppendChannelData(nil, 0x4000, []byte("x"), false), 9, 9, 9, 9, 9, 9))
	f.Add([]byte{0x40, 0x01, 0xff, 0xff, 1, 2})
	f.Add(stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, testID)))
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, ferr := ChannelDataFrameLength(b, true)
		ch, data, err := ParseChannelData(b)
		if err != nil {
			return
		}
		if !IsChannelData(b, true) || IsChannelData(b, false) != ValidChannel(ch, false) {
			t.Fatalf("parsed %x: IsChannelData disagrees with the channel number", b)
		}
		if ferr != nil || frame < ChannelDataHeaderSize+len(data) || frame%4 != 0 {
			t.Fatalf("ChannelDataFrameLength = %d, %v for data of %d bytes", frame, ferr, len(data))
		}
		if ValidChannel(ch, false) && !ValidChannel(ch, true) {
			t.Fatalf("channel %#04x strict-valid but not loose-valid", ch)
		}
		for _, pad := range []bool{false, true} {
			out := AppendChannelData(nil, ch, data, pad)
			if !pad && !bytes.Equal(out, b[:ChannelDataHeaderSize+len(data)]) {
				t.Fatalf("re-encoded %x, want %x", out, b[:ChannelDataHeaderSize+len(data)])
			}
			if n, err := ChannelDataFrameLength(out, true); pad && (err != nil || n != len(out)) {
				t.Fatalf("padded frame of %d bytes, ChannelDataFrameLength = %d, %v", len(out), n, err)
			}
			ch2, data2, err := ParseChannelData(out)
			if err != nil || ch2 != ch || !bytes.Equal(data2, data) {
				t.Fatalf("round trip pad=%v: %#04x %x %v, want %#04x %x", pad, ch2, data2, err, ch, data)
			}
		}
	})
}

// fuzzAttr runs a fixed-format attribute parser: whatever parses must
// re-encode, through a whole STUN message, to a value that parses equal,
// and that value must be canonical (reserved bits cleared, so appending it
// again gives the same bytes).
func fuzzAttr[T comparable](f *testing.F, typ stun.AttrType, seeds [][]byte,
	parse func([]byte) (T, error), appendFn func([]byte, T) []byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		x, err := parse(v)
		if err != nil {
			return
		}
		v2 := attrValue(t, typ, func(b []byte) []byte { return appendFn(b, x) })
		x2, err := parse(v2)
		if err != nil || x2 != x {
			t.Fatalf("round trip of %x: %v, %v; want %v", v, x2, err, x)
		}
		if v3 := attrValue(t, typ, func(b []byte) []byte { return appendFn(b, x2) }); !bytes.Equal(v3, v2) {
			t.Fatalf("encoding not canonical: %x then %x", v2, v3)
		}
	})
}

func FuzzParseRequestedTransport(f *testing.F) {
	fuzzAttr(f, stun.AttrRequestedTransport, [][]byte{{17, 0, 0, 0}, {6, 1, 2, 3}, {17}},
		ParseRequestedTransport, AppendRequestedTransport)
}

func FuzzParseLifetime(f *testing.F) {
	fuzzAttr(f, stun.AttrLifetime, [][]byte{{0, 0, 3, 9}, {0xff, 0xff, 0xff, 0xff}, {0, 0}},
		ParseLifetime, AppendLifetime)
}

func FuzzParseChannelNumber(f *testing.F) {
	fuzzAttr(f, stun.AttrChannelNumber, [][]byte{{0x40, 0x01, 0, 0}, {0x7f, 0xff, 0xff, 0xff}, {0x40}},
		ParseChannelNumber, AppendChannelNumber)
}

func FuzzParseEvenPort(f *testing.F) {
	fuzzAttr(f, stun.AttrEvenPort, [][]byte{{0x80}, {0x7f}, {0x80, 0, 0, 0}},
		ParseEvenPort, AppendEvenPort)
}

func FuzzParseReservationToken(f *testing.F) {
	fuzzAttr(f, stun.AttrReservationToken, [][]byte{{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4}},
		ParseReservationToken, AppendReservationToken)
}

func FuzzParseConnectionID(f *testing.F) {
	fuzzAttr(f, stun.AttrConnectionID, [][]byte{{0xde, 0xad, 0xbe, 0xef}, {1, 2, 3, 4, 5}},
		ParseConnectionID, AppendConnectionID)
}

func FuzzParseRequestedAddressFamily(f *testing.F) {
	fuzzAttr(f, stun.AttrRequestedAddressFamily, [][]byte{{1, 0, 0, 0}, {2, 9, 9, 9}, {3, 0, 0, 0}, {2}},
		ParseRequestedAddressFamily, AppendRequestedAddressFamily)
}

func FuzzParseAdditionalAddressFamily(f *testing.F) {
	fuzzAttr(f, stun.AttrAdditionalAddressFamily, [][]byte{{2, 0, 0, 0}, {1, 0, 0, 0}, {2, 1}},
		ParseAdditionalAddressFamily, AppendAdditionalAddressFamily)
}

type icmp struct {
	typ, code uint8
	data      uint32
}

func FuzzParseICMP(f *testing.F) {
	fuzzAttr(f, stun.AttrIcmp, [][]byte{{0, 0, 3, 4, 0, 0, 5, 0}, {0xff, 0xff, 1, 2, 3, 4, 5, 6}, {0, 0, 3, 4}},
		func(v []byte) (icmp, error) {
			typ, code, data, err := ParseICMP(v)
			return icmp{typ, code, data}, err
		},
		func(b []byte, x icmp) []byte { return AppendICMP(b, x.typ, x.code, x.data) })
}

func FuzzParseAddressErrorCode(f *testing.F) {
	f.Add([]byte{1, 0, 4, 40})
	f.Add(append([]byte{2, 0xff, 0xfd, 8}, "Insufficient Capacity"...))
	f.Add(append([]byte{2, 0, 4, 40}, bytes.Repeat([]byte("é"), 200)...))
	f.Add([]byte{3, 0, 4, 40})
	f.Add([]byte{1, 0, 4})
	f.Fuzz(func(t *testing.T, v []byte) {
		fam, code, reason, err := ParseAddressErrorCode(v)
		if err != nil {
			return
		}
		v2 := attrValue(t, stun.AttrAddressErrorCode, func(b []byte) []byte {
			return AppendAddressErrorCode(b, fam, code, string(reason))
		})
		fam2, code2, reason2, err := ParseAddressErrorCode(v2)
		if err != nil || fam2 != fam || code2 != code {
			t.Fatalf("round trip of %x: %s %d %v; want %s %d", v, fam2, code2, err, fam, code)
		}
		// The sender fills an empty reason in and cuts a long one.
		switch {
		case len(reason) == 0:
			if string(reason2) != stun.ReasonPhrase(code) {
				t.Fatalf("empty reason became %q", reason2)
			}
		case len(reason) <= 509 && utf8.RuneCount(reason) <= 127:
			if !bytes.Equal(reason2, reason) {
				t.Fatalf("reason %q became %q", reason, reason2)
			}
		default:
			if !bytes.HasPrefix(reason, reason2) {
				t.Fatalf("reason %q cut to %q", reason, reason2)
			}
		}
	})
}

func FuzzParseRESTUsername(f *testing.F) {
	for _, s := range []string{"1700000000:alice", "1700000000", "alice:1700000000", ":1", "x", "", "1:a:b", "99999999999999999999:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, user, ok := ParseRESTUsername(s)
		if !ok {
			return
		}
		u, p := RESTCredentials("secret", user, exp)
		exp2, user2, ok := ParseRESTUsername(u)
		if !ok || !exp2.Equal(exp) || user2 != user {
			t.Fatalf("%q -> %q -> %v %q %v; want %v %q", s, u, exp2, user2, ok, exp, user)
		}
		if p != RESTPassword("secret", u) {
			t.Fatalf("password mismatch for %q", u)
		}
		if exp.Before(time.Unix(0, 0)) {
			t.Fatalf("%q gave an expiry before 1970", s)
		}
	})
}
