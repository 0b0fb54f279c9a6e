package turn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Channel numbers. RFC 8656, Section 12: 0x4000-0x4FFF are the channel
// numbers a client may bind; 0x5000-0xFFFF are reserved so that the first
// byte of a ChannelData message stays in the range RFC 7983 gives TURN.
const (
	MinChannel uint16 = 0x4000
	MaxChannel uint16 = 0x4FFF
	// MaxChannelLoose is the top of the older range of RFC 5766,
	// Section 11 (0x4000-0x7FFF), which coturn still accepts and its
	// turnutils_uclient uses. Accept it only when configured to.
	MaxChannelLoose uint16 = 0x7FFF
)

// ChannelDataHeaderSize is the size of the ChannelData header: a 16-bit
// channel number and a 16-bit length. RFC 8656, Section 12.4.
const ChannelDataHeaderSize = 4

// MaxChannelDataLength is the most application data one ChannelData message
// carries: its length field has 16 bits. Every UDP payload fits.
const MaxChannelDataLength = 0xFFFF

// ErrNotChannelData reports bytes whose first byte is not ChannelData's
// (IsChannelDataByte), or, for ParseChannelData, whose first two bits are
// not 01 (RFC 8656, Section 12.4).
var ErrNotChannelData = errors.New("turn: not a ChannelData message")

// Errors of the per-packet path, built once so that dropping a malformed
// packet allocates nothing.
var (
	errChanHeader = fmt.Errorf("%w: ChannelData shorter than its %d-byte header", stun.ErrTruncated, ChannelDataHeaderSize)
	errChanData   = fmt.Errorf("%w: ChannelData length field exceeds the bytes received", stun.ErrTruncated)
)

// ValidChannel reports whether ch may be bound to a peer: 0x4000-0x4FFF
// (RFC 8656, Section 12), or 0x4000-0x7FFF when loose is set (RFC 5766,
// Section 11, for coturn's clients).
func ValidChannel(ch uint16, loose bool) bool {
	if loose {
		return ch >= MinChannel && ch <= MaxChannelLoose
	}
	return ch >= MinChannel && ch <= MaxChannel
}

// IsChannelDataByte reports whether a message whose first byte is c is
// ChannelData. This is the one rule of package turn for telling
// ChannelData apart, on a socket (RFC 7983, Section 7) and on a stream:
// first byte 0x40-0x4F, channel numbers 0x4000-0x4FFF (RFC 8656, Section
// 12; RFC 9443 gives TURN 64-79), or with loose 0x40-0x7F, the older range
// 0x4000-0x7FFF of RFC 5766, Section 11 (turnserver's LooseChannels).
func IsChannelDataByte(c byte, loose bool) bool {
	if loose {
		return c&0xC0 == 0x40
	}
	return c&0xF0 == 0x40
}

// IsChannelData reports whether b could be a ChannelData message: it
// holds at least a header and its first byte is ChannelData's
// (IsChannelDataByte). It does not look at the length field;
// ParseChannelData does.
func IsChannelData(b []byte, loose bool) bool {
	return len(b) >= ChannelDataHeaderSize && IsChannelDataByte(b[0], loose)
}

// ParseChannelData decodes the ChannelData message at the start of b,
// reading in place: data refers to b. b is one datagram or one frame cut by
// ChannelDataFrameLength.
//
// The length field must not run past b; a shorter field is accepted, and the
// bytes after the data are ignored, because padding is optional over UDP
// and mandatory over TCP (RFC 8656, Section 12.5), and RFC 8656,
// Section 12.6, discards only datagrams too short for the length they claim.
//
// The channel number is returned as sent, anywhere in 0x4000-0x7FFF;
// whether it is valid (ValidChannel) and bound is the caller's question.
// Errors wrap ErrNotChannelData or stun.ErrTruncated. ParseChannelData
// allocates nothing, also on error.
func ParseChannelData(b []byte) (channel uint16, data []byte, err error) {
	if len(b) < ChannelDataHeaderSize {
		return 0, nil, errChanHeader
	}
	if b[0]&0xC0 != 0x40 {
		return 0, nil, ErrNotChannelData
	}
	channel = binary.BigEndian.Uint16(b[0:2])
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if ChannelDataHeaderSize+n > len(b) {
		return 0, nil, errChanData
	}
	return channel, b[ChannelDataHeaderSize : ChannelDataHeaderSize+n], nil
}

// ChannelDataFrameLength returns the size of the ChannelData frame that
// starts at b[0] on a stream transport: the header, the data and the padding
// to a multiple of 4 bytes that RFC 8656, Section 12.5, requires over TCP and
// TLS. It needs only the 4-byte header; with fewer bytes it returns an error
// wrapping stun.ErrTruncated (read more), and ErrNotChannelData when the
// first byte is not ChannelData's (IsChannelDataByte with loose; then the
// stream may hold STUN instead: see stun.StreamFrame).
func ChannelDataFrameLength(b []byte, loose bool) (int, error) {
	if len(b) > 0 && !IsChannelDataByte(b[0], loose) {
		return 0, ErrNotChannelData
	}
	if len(b) < ChannelDataHeaderSize {
		return 0, errChanHeader
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return ChannelDataHeaderSize + pad4(n), nil
}

// FrameChannelData frames ChannelData on a stream it shares with STUN,
// with the shape of stun.FrameFunc: the frame's length, or 0 and the
// header size while the header is incomplete, or ErrNotChannelData. TURN
// clients and servers pass it (through StreamFramer, or a wrapper with
// more checks) to the STUN layer's framers, which know nothing of TURN.
func FrameChannelData(b []byte, loose bool) (n, need int, err error) {
	n, err = ChannelDataFrameLength(b, loose)
	if err == errChanHeader {
		return 0, ChannelDataHeaderSize, nil
	}
	return n, 0, err
}

// StreamFramer returns FrameChannelData with loose fixed, as a
// stun.FrameFunc.
func StreamFramer(loose bool) stun.FrameFunc {
	if loose {
		return frameLoose
	}
	return frameStrict
}

func frameLoose(b []byte) (int, int, error)  { return FrameChannelData(b, true) }
func frameStrict(b []byte) (int, int, error) { return FrameChannelData(b, false) }

// AppendChannelData appends a ChannelData message for channel with data to
// b and returns the extended buffer. With pad set, zeros follow the data up
// to a multiple of 4 bytes, as TCP and TLS need (RFC 8656, Section 12.5);
// over UDP leave it unset.
//
// data may sit in b's spare capacity right after the header position, so a
// relay can read a peer's datagram into buf[ChannelDataHeaderSize:] and
// build the message in place:
//
//	n, _ := conn.Read(buf[turn.ChannelDataHeaderSize:])
//	msg := turn.AppendChannelData(buf[:0], ch, buf[turn.ChannelDataHeaderSize:][:n], false)
//
// The channel number is written as given. len(data) must not exceed
// MaxChannelDataLength; a longer data is a programming error and panics.
func AppendChannelData(b []byte, channel uint16, data []byte, pad bool) []byte {
	if len(data) > MaxChannelDataLength {
		panic("turn: ChannelData of more than 65535 bytes")
	}
	b = binary.BigEndian.AppendUint16(b, channel)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	b = append(b, data...)
	if pad {
		for i := len(data); i%4 != 0; i++ {
			b = append(b, 0)
		}
	}
	return b
}

func pad4(n int) int { return (n + 3) &^ 3 }
