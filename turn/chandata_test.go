package turn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
)

// rawChannelData writes a ChannelData message byte by byte, independently
// of AppendChannelData: header with the given length field, data, then
// trailing bytes.
func rawChannelData(ch uint16, length int, data []byte, trailing ...byte) []byte {
	b := make([]byte, 4, 4+len(data)+len(trailing))
	binary.BigEndian.PutUint16(b[0:2], ch)
	binary.BigEndian.PutUint16(b[2:4], uint16(length))
	b = append(b, data...)
	return append(b, trailing...)
}

func TestValidChannel(t *testing.T) {
	cases := []struct {
		ch            uint16
		strict, loose bool
	}{
		{0x0000, false, false},
		{0x3FFF, false, false},
		{0x4000, true, true},
		{0x4001, true, true},
		{0x4525, true, true},
		{0x4FFF, true, true},
		{0x5000, false, true},
		{0x52BA, false, true},
		{0x7FFE, false, true},
		{0x7FFF, false, true},
		{0x8000, false, false},
		{0xFFFF, false, false},
	}
	for _, tc := range cases {
		if got := ValidChannel(tc.ch, false); got != tc.strict {
			t.Errorf("ValidChannel(%#04x, strict) = %v, want %v", tc.ch, got, tc.strict)
		}
		if got := ValidChannel(tc.ch, true); got != tc.loose {
			t.Errorf("ValidChannel(%#04x, loose) = %v, want %v", tc.ch, got, tc.loose)
		}
	}
}

func TestIsChannelData(t *testing.T) {
	cases := []struct {
		name          string
		b             []byte
		strict, loose bool
	}{
		{"nil", nil, false, false},
		{"3 bytes", []byte{0x40, 0, 0}, false, false},
		{"empty data", []byte{0x40, 0, 0, 0}, true, true},
		{"0x4FFF", []byte{0x4F, 0xFF, 0, 0}, true, true},
		{"loose 0x5000", []byte{0x50, 0x00, 0, 0}, false, true},
		{"loose 0x7FFF", []byte{0x7F, 0xFF, 0, 0}, false, true},
		{"STUN", stun.AppendHeader(nil, stun.BindingRequest, stun.TransactionID{}), false, false},
		{"0x3F", []byte{0x3F, 0xFF, 0, 0}, false, false},
		{"0x80 RTP", []byte{0x80, 0, 0, 0}, false, false},
		{"0xC0", []byte{0xC0, 0, 0, 0}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsChannelData(tc.b, false); got != tc.strict {
				t.Errorf("IsChannelData(%x, strict) = %v, want %v", tc.b, got, tc.strict)
			}
			if got := IsChannelData(tc.b, true); got != tc.loose {
				t.Errorf("IsChannelData(%x, loose) = %v, want %v", tc.b, got, tc.loose)
			}
		})
	}
}

// TestChannelDataRule: the first-byte rule agrees with the channel
// numbers ValidChannel allows, strict and loose, for every channel number.
func TestChannelDataRule(t *testing.T) {
	for ch := range 0x10000 {
		for _, loose := range []bool{false, true} {
			if got, want := IsChannelDataByte(byte(ch>>8), loose), ValidChannel(uint16(ch), loose); got != want {
				t.Fatalf("channel %#04x loose=%v: IsChannelDataByte %v, ValidChannel %v", ch, loose, got, want)
			}
		}
	}
}

func TestParseChannelData(t *testing.T) {
	five := []byte("hello")
	cases := []struct {
		name    string
		b       []byte
		ch      uint16
		data    []byte
		wantErr error
	}{
		{"UDP unpadded", rawChannelData(0x4001, 5, five), 0x4001, five, nil},
		{"UDP padded", rawChannelData(0x4001, 5, five, 0, 0, 0), 0x4001, five, nil},
		// RFC 8656, Section 12.6 discards only datagrams shorter than the
		// length field; bytes past the padding are ignored too.
		{"UDP longer than padding", rawChannelData(0x4001, 5, five, 1, 2, 3, 4, 5, 6, 7), 0x4001, five, nil},
		{"empty data", rawChannelData(0x4FFF, 0, nil), 0x4FFF, []byte{}, nil},
		{"empty data padded", rawChannelData(0x4000, 0, nil, 0, 0, 0, 0), 0x4000, []byte{}, nil},
		{"aligned", rawChannelData(0x4000, 8, []byte("12345678")), 0x4000, []byte("12345678"), nil},
		{"loose channel returned as sent", rawChannelData(0x7FFF, 1, []byte{9}), 0x7FFF, []byte{9}, nil},
		{"max length", rawChannelData(0x4000, 0xFFFF, make([]byte, 0xFFFF)), 0x4000, make([]byte, 0xFFFF), nil},
		{"empty", nil, 0, nil, stun.ErrTruncated},
		{"short header", []byte{0x40, 0x00, 0x00}, 0, nil, stun.ErrTruncated},
		{"length past datagram", rawChannelData(0x4001, 6, five), 0, nil, stun.ErrTruncated},
		{"length far past datagram", rawChannelData(0x4001, 0xFFFF, five), 0, nil, stun.ErrTruncated},
		{"STUN first bits 00", rawChannelData(0x0001, 0, nil), 0, nil, ErrNotChannelData},
		{"first bits 10", rawChannelData(0x8000, 0, nil), 0, nil, ErrNotChannelData},
		{"first bits 11", rawChannelData(0xC000, 0, nil), 0, nil, ErrNotChannelData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch, data, err := ParseChannelData(tc.b)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseChannelData err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch != tc.ch || !bytes.Equal(data, tc.data) {
				t.Fatalf("ParseChannelData = %#04x %q, want %#04x %q", ch, data, tc.ch, tc.data)
			}
			// data refers to the input buffer.
			if len(data) > 0 && &data[0] != &tc.b[4] {
				t.Fatal("data does not refer to the input")
			}
		})
	}
}

func TestAppendChannelData(t *testing.T) {
	cases := []struct {
		name string
		ch   uint16
		data []byte
		pad  bool
		want []byte
	}{
		{"UDP 5", 0x4001, []byte("hello"), false, rawChannelData(0x4001, 5, []byte("hello"))},
		{"TCP 5", 0x4001, []byte("hello"), true, rawChannelData(0x4001, 5, []byte("hello"), 0, 0, 0)},
		{"TCP 6", 0x4002, []byte("hello!"), true, rawChannelData(0x4002, 6, []byte("hello!"), 0, 0)},
		{"TCP 7", 0x4003, []byte("hello!!"), true, rawChannelData(0x4003, 7, []byte("hello!!"), 0)},
		{"TCP 8", 0x4FFF, []byte("12345678"), true, rawChannelData(0x4FFF, 8, []byte("12345678"))},
		{"TCP empty", 0x4000, nil, true, rawChannelData(0x4000, 0, nil)},
		{"UDP empty", 0x4000, nil, false, rawChannelData(0x4000, 0, nil)},
		{"max", 0x4000, make([]byte, 0xFFFF), false, rawChannelData(0x4000, 0xFFFF, make([]byte, 0xFFFF))},
		{"max TCP", 0x4000, make([]byte, 0xFFFF), true, rawChannelData(0x4000, 0xFFFF, make([]byte, 0xFFFF), 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("xyz")
			got := AppendChannelData(bytes.Clone(prefix), tc.ch, tc.data, tc.pad)
			if !bytes.Equal(got[:3], prefix) || !bytes.Equal(got[3:], tc.want) {
				t.Fatalf("AppendChannelData = %x, want %x after the prefix", got, tc.want)
			}
			msg := got[3:]
			if tc.pad && len(msg)%4 != 0 {
				t.Fatalf("padded message of %d bytes", len(msg))
			}
			n, err := ChannelDataFrameLength(msg, false)
			if err != nil {
				t.Fatal(err)
			}
			if tc.pad && n != len(msg) {
				t.Fatalf("ChannelDataFrameLength = %d, want %d", n, len(msg))
			}
			ch, data, err := ParseChannelData(msg)
			if err != nil || ch != tc.ch || !bytes.Equal(data, tc.data) {
				t.Fatalf("round trip: %#04x %x %v", ch, data, err)
			}
		})
	}
}

func TestAppendChannelDataTooLong(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("AppendChannelData of 65536 bytes did not panic")
		}
	}()
	AppendChannelData(nil, 0x4000, make([]byte, 0x10000), false)
}

// TestAppendChannelDataInPlace checks the relay idiom: the peer's datagram
// was read right after the header position, and the message is built over
// it without a second buffer.
func TestAppendChannelDataInPlace(t *testing.T) {
	for _, pad := range []bool{false, true} {
		buf := make([]byte, 64)
		payload := []byte("in place!")
		n := copy(buf[ChannelDataHeaderSize:], payload)
		for i := ChannelDataHeaderSize + n; i < len(buf); i++ {
			buf[i] = 0xEE // junk that padding must overwrite
		}
		msg := AppendChannelData(buf[:0], 0x4321, buf[ChannelDataHeaderSize:][:n], pad)
		want := rawChannelData(0x4321, n, payload)
		if pad {
			want = rawChannelData(0x4321, n, payload, 0, 0, 0)
		}
		if !bytes.Equal(msg, want) || &msg[0] != &buf[0] {
			t.Fatalf("pad=%v: in-place message %x, want %x in buf", pad, msg, want)
		}
	}
}

// TestChannelDataStream frames a TCP byte stream holding padded ChannelData
// messages and a STUN message, as a server's TCP reader would.
func TestChannelDataStream(t *testing.T) {
	payloads := [][]byte{[]byte("a"), []byte("bb"), nil, []byte("cccc"), []byte("ddddd")}
	var stream []byte
	for i, p := range payloads {
		stream = AppendChannelData(stream, MinChannel+uint16(i), p, true)
	}
	stunMsg := stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, stun.TransactionID{1}))
	stream = append(stream, stunMsg...)
	stream = AppendChannelData(stream, MaxChannel, []byte("last"), true)

	var got [][]byte
	sawSTUN := false
	for len(stream) > 0 {
		n, err := ChannelDataFrameLength(stream, false)
		if errors.Is(err, ErrNotChannelData) {
			n, err = stun.MessageLength(stream)
			if err != nil {
				t.Fatal(err)
			}
			sawSTUN = true
			stream = stream[n:]
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > len(stream) {
			t.Fatalf("frame of %d bytes, %d left", n, len(stream))
		}
		_, data, err := ParseChannelData(stream[:n])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, data)
		stream = stream[n:]
	}
	want := append(payloads, []byte("last"))
	if !sawSTUN || len(got) != len(want) {
		t.Fatalf("framed %d messages (STUN seen %v), want %d", len(got), sawSTUN, len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestChannelDataFrameLength(t *testing.T) {
	cases := []struct {
		name    string
		b       []byte
		want    int
		wantErr error // with loose
		strict  error // without loose, if it differs
	}{
		{"header only, length 0", []byte{0x40, 0, 0, 0}, 4, nil, nil},
		{"length 1", []byte{0x40, 0, 0, 1}, 8, nil, nil},
		{"length 4", []byte{0x40, 0, 0, 4}, 8, nil, nil},
		{"length 5", []byte{0x40, 0, 0, 5}, 12, nil, nil},
		{"length 65535", []byte{0x4F, 0xFF, 0xFF, 0xFF}, 4 + 65536, nil, nil},
		{"needs no data yet", []byte{0x40, 0, 0, 100, 1}, 104, nil, nil},
		{"loose channel", []byte{0x7F, 0xFF, 0, 1}, 8, nil, ErrNotChannelData},
		{"empty", nil, 0, stun.ErrTruncated, nil},
		{"3 bytes", []byte{0x40, 0, 0}, 0, stun.ErrTruncated, nil},
		{"1 byte, not ChannelData", []byte{0x80}, 0, ErrNotChannelData, nil},
		{"STUN", []byte{0x00, 0x01, 0, 0}, 0, ErrNotChannelData, nil},
		{"0x80", []byte{0x80, 0x01, 0, 0}, 0, ErrNotChannelData, nil},
	}
	for _, tc := range cases {
		for _, loose := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/loose=%v", tc.name, loose), func(t *testing.T) {
				wantErr := tc.wantErr
				if !loose && tc.strict != nil {
					wantErr = tc.strict
				}
				n, err := ChannelDataFrameLength(tc.b, loose)
				fn, need, ferr := StreamFramer(loose)(tc.b)
				if wantErr != nil {
					if !errors.Is(err, wantErr) {
						t.Fatalf("err = %v, want %v", err, wantErr)
					}
					switch {
					case errors.Is(wantErr, stun.ErrTruncated):
						if fn != 0 || need != ChannelDataHeaderSize || ferr != nil {
							t.Fatalf("StreamFramer = %d, %d, %v; want 0, %d, nil", fn, need, ferr, ChannelDataHeaderSize)
						}
					case !errors.Is(ferr, wantErr):
						t.Fatalf("StreamFramer err = %v, want %v", ferr, wantErr)
					}
					return
				}
				if err != nil || n != tc.want {
					t.Fatalf("ChannelDataFrameLength = %d, %v; want %d", n, err, tc.want)
				}
				if fn != n || need != 0 || ferr != nil {
					t.Fatalf("StreamFramer = %d, %d, %v; want %d, 0, nil", fn, need, ferr, n)
				}
			})
		}
	}
}
