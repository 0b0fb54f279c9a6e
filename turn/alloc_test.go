package turn

import (
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// TestZeroAllocs proves that the per-packet path allocates nothing, and
// neither do the attribute appends a server uses in every response.
func TestZeroAllocs(t *testing.T) {
	payload := make([]byte, 1200)
	udp := AppendChannelData(nil, 0x4001, payload, false)
	tcp := AppendChannelData(nil, 0x4001, payload[:1199], true)
	garbage := []byte{0x40, 0x01, 0xff, 0xff, 0}
	out := make([]byte, 0, 2048)
	tok := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	cases := []struct {
		name string
		f    func()
	}{
		{"IsChannelData", func() {
			if !IsChannelData(udp, false) {
				t.Fatal("not ChannelData")
			}
		}},
		{"ParseChannelData", func() {
			if _, _, err := ParseChannelData(udp); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseChannelData error", func() {
			if _, _, err := ParseChannelData(garbage); err == nil {
				t.Fatal("no error")
			}
		}},
		{"ChannelDataFrameLength", func() {
			if _, err := ChannelDataFrameLength(tcp, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"FrameChannelData", func() {
			if _, _, err := FrameChannelData(tcp, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"AppendChannelData UDP", func() { out = AppendChannelData(out[:0], 0x4001, payload, false) }},
		{"AppendChannelData TCP", func() { out = AppendChannelData(out[:0], 0x4001, payload[:1199], true) }},
		{"AppendChannelData in place", func() {
			out = AppendChannelData(out[:0], 0x4001, out[ChannelDataHeaderSize:][:1000], false)
		}},
		{"attribute appends", func() {
			b := stun.AppendHeader(out[:0], stun.Type{Method: stun.MethodAllocate, Class: stun.ClassSuccess}, testID)
			b = AppendLifetime(b, 600*time.Second)
			b = AppendRequestedTransport(b, ProtoUDP)
			b = AppendChannelNumber(b, 0x4001)
			b = AppendEvenPort(b, true)
			b = AppendReservationToken(b, tok)
			b = AppendRequestedAddressFamily(b, FamilyIPv6)
			b = AppendAdditionalAddressFamily(b, FamilyIPv6)
			b = AppendAddressErrorCode(b, FamilyIPv6, 440, "")
			b = AppendConnectionID(b, 7)
			out = AppendICMP(b, 3, 4, 1280)
		}},
		{"attribute parses", func() {
			v4 := []byte{0x40, 0x01, 0, 0}
			if _, err := ParseChannelNumber(v4); err != nil {
				t.Fatal(err)
			}
			if _, err := ParseLifetime(v4); err != nil {
				t.Fatal(err)
			}
			if _, err := ParseReservationToken(tok[:]); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tc.f); n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
}

func BenchmarkParseChannelData(b *testing.B) {
	msg := AppendChannelData(nil, 0x4001, make([]byte, 1200), false)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := ParseChannelData(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendChannelData(b *testing.B) {
	payload := make([]byte, 1200)
	out := make([]byte, 0, 1300)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		out = AppendChannelData(out[:0], 0x4001, payload, true)
	}
}
