package stun

import (
	"encoding/binary"
	"errors"
	"testing"
)

// lenFramer is another protocol for the tests: first byte 0x80-0xFF, a
// 2-byte header whose second byte is the body length.
func lenFramer(b []byte) (int, int, error) {
	if b[0] < 0x80 {
		return 0, 0, errors.New("not ours")
	}
	if len(b) < 2 {
		return 0, 2, nil
	}
	return 2 + int(b[1]), 0, nil
}

func TestStreamFrame(t *testing.T) {
	stunMsg := AppendFingerprint(AppendHeader(nil, BindingRequest, TransactionID{1}))
	cases := []struct {
		name   string
		b      []byte
		other  FrameFunc
		n      int
		need   int
		isSTUN bool
		err    error
	}{
		{"empty", nil, lenFramer, 0, 1, false, nil},
		{"STUN, 1 byte", stunMsg[:1], lenFramer, 0, HeaderSize, true, nil},
		{"STUN header", stunMsg[:HeaderSize], nil, len(stunMsg), 0, true, nil},
		{"STUN whole", stunMsg, lenFramer, len(stunMsg), 0, true, nil},
		{"STUN bad length", []byte{0, 1, 0, 3, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, 0, 0, true, ErrNotSTUN},
		{"other, 1 byte", []byte{0x80}, lenFramer, 0, 2, false, nil},
		{"other", []byte{0x80, 5}, lenFramer, 7, 0, false, nil},
		{"other refused", []byte{0x40, 5}, lenFramer, 0, 0, false, ErrNotSTUN},
		{"other without framer", []byte{0x80, 5}, nil, 0, 0, false, ErrNotSTUN},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, need, isSTUN, err := StreamFrame(tc.b, tc.other)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (n != tc.n || need != tc.need || isSTUN != tc.isSTUN) {
				t.Fatalf("StreamFrame = %d, %d, %v; want %d, %d, %v", n, need, isSTUN, tc.n, tc.need, tc.isSTUN)
			}
		})
	}
}

func TestIsSTUNByte(t *testing.T) {
	for c := range 256 {
		if got, want := IsSTUNByte(byte(c)), c < 64; got != want {
			t.Errorf("IsSTUNByte(%#02x) = %v", c, got)
		}
	}
}

// FuzzStreamFrame cuts a stream into frames as a server's TCP loop does:
// it never panics, asks for more bytes only when it has too few, and every
// frame it cuts is what its header says.
//
//	go test -run='^$' -fuzz='^FuzzStreamFrame$' -fuzztime=20s ./stun/
func FuzzStreamFrame(f *testing.F) {
	f.Add(AppendFingerprint(AppendHeader(nil, BindingRequest, TransactionID{1})))
	f.Add([]byte{0x80, 2, 1, 1, 0, 1, 0, 0})
	f.Add([]byte{0x40, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			n, need, isSTUN, err := StreamFrame(b, lenFramer)
			if err != nil {
				return
			}
			if n == 0 {
				if need <= len(b) {
					t.Fatalf("asks for %d bytes, holds %d", need, len(b))
				}
				return
			}
			if isSTUN {
				if m, err := MessageLength(b); err != nil || m != n || n != HeaderSize+int(binary.BigEndian.Uint16(b[2:4])) {
					t.Fatalf("STUN frame of %d bytes, MessageLength %d, %v", n, m, err)
				}
			} else if b[0] < 0x80 || len(b) < 2 || n != 2+int(b[1]) {
				t.Fatalf("other frame of %d bytes from %x", n, b[:min(len(b), 2)])
			}
			if n > len(b) {
				return
			}
			b = b[n:]
		}
	})
}
