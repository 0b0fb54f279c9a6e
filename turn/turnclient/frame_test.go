package turnclient

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// FuzzReadFrame: the stream framer of TCP and TLS allocations never
// panics, and every frame it returns is one whole STUN message or one
// padded ChannelData frame on a channel this client can bind
// (0x4000-0x4FFF), as its header says.
//
//	go test -run='^$' -fuzz='^FuzzReadFrame$' -fuzztime=20s ./turn/turnclient/
func FuzzReadFrame(f *testing.F) {
	id := stun.TransactionID{1, 2, 3}
	f.Add(append(stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingSuccess, id)), turn.AppendChannelData(nil, 0x4001, []byte("abc"), true)...))
	f.Add(turn.AppendChannelData(nil, 0x7FFF, []byte("abcde"), true))
	f.Add([]byte{0x4F, 0xFF, 0x00, 0x05, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		var buf []byte
		for range 64 {
			frame, err := readFrame(br, buf)
			if err != nil {
				return
			}
			buf = frame[:0]
			if stun.IsSTUNByte(frame[0]) {
				if n, err := stun.MessageLength(frame); err != nil || n != len(frame) {
					t.Fatalf("STUN frame of %d bytes, header says %d (%v)", len(frame), n, err)
				}
				continue
			}
			n, err := turn.ChannelDataFrameLength(frame, false)
			if err != nil || n != len(frame) {
				t.Fatalf("ChannelData frame of %d bytes, header says %d (%v)", len(frame), n, err)
			}
			if ch, _, err := turn.ParseChannelData(frame); err != nil || !turn.ValidChannel(ch, false) {
				t.Fatalf("ChannelData frame %x: channel %#04x, %v", frame[:4], ch, err)
			}
		}
	})
}
