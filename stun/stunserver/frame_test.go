package stunserver

import (
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// FuzzTCPFraming cuts a stream into messages with frameLength, as
// serveConn does, with and without an OtherHandler's framer (here TURN's
// ChannelData rule, strict and loose): it never panics, never asks for
// more than it reads or for bytes it holds, and every message it cuts is
// within the server's limits and is what its header says.
//
//	go test -run='^$' -fuzz='^FuzzTCPFraming$' -fuzztime=20s ./stun/stunserver/
func FuzzTCPFraming(f *testing.F) {
	id := stun.TransactionID{1, 2, 3}
	bind := stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, id))
	f.Add(append(append([]byte(nil), bind...), turn.AppendChannelData(nil, 0x4001, []byte("abc"), true)...), uint8(1))
	f.Add(turn.AppendChannelData(nil, 0x7FFF, []byte("abcde"), true), uint8(2))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(0))
	f.Add([]byte{0x4F, 0xFF, 0xFF, 0xFF}, uint8(1))
	f.Add([]byte{0, 1, 0xFF, 0xFC}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		var other stun.FrameFunc
		switch mode % 3 {
		case 1:
			other = turn.StreamFramer(false)
		case 2:
			other = turn.StreamFramer(true)
		}
		for len(b) > 0 {
			n, need, fail := frameLength(b, other)
			switch {
			case fail == frameRefused && other == nil:
				t.Fatalf("refused %x without an OtherHandler", b[:min(len(b), 4)])
			case fail != frameOK:
				return // framing lost: the connection closes
			case n == 0:
				if need <= len(b) || need > maxOtherFrame {
					t.Fatalf("asks for %d bytes, holds %d", need, len(b))
				}
				return
			}
			if stun.IsSTUNByte(b[0]) {
				if m, err := stun.MessageLength(b); err != nil || m != n || n > MaxMessageSize {
					t.Fatalf("STUN frame of %d bytes, MessageLength %d, %v", n, m, err)
				}
			} else {
				if other == nil {
					t.Fatalf("frame %x taken without an OtherHandler", b[:min(len(b), 4)])
				}
				if !turn.IsChannelData(b, mode%3 == 2) || n > maxOtherFrame || n%4 != 0 {
					t.Fatalf("ChannelData frame of %d bytes from %x", n, b[:min(len(b), 4)])
				}
			}
			if n > len(b) {
				return // the server reads the rest
			}
			if !stun.IsSTUNByte(b[0]) {
				if _, _, err := turn.ParseChannelData(b[:n]); err != nil {
					t.Fatalf("frame %x: %v", b[:n], err)
				}
			}
			b = b[n:]
		}
	})
}
