package turn

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Transport protocols for REQUESTED-TRANSPORT: IANA protocol numbers.
// RFC 8656, Section 18.8, and RFC 6062, Section 6.1.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// errLen reports an attribute value of the wrong size.
func errLen(t stun.AttrType, got int, want string) error {
	return fmt.Errorf("%w: %s of %d bytes, want %s", stun.ErrMalformed, t, got, want)
}

// AppendRequestedTransport appends REQUESTED-TRANSPORT: the protocol number
// and three RFFU bytes set to zero. RFC 8656, Section 18.8.
func AppendRequestedTransport(b []byte, proto uint8) []byte {
	return stun.AppendUint32Attr(b, stun.AttrRequestedTransport, uint32(proto)<<24)
}

// ParseRequestedTransport decodes a REQUESTED-TRANSPORT value. The RFFU bytes
// are ignored, as RFC 8656, Section 18.8, requires of a receiver. Any
// protocol number is returned; a server answers one it does not relay with
// 442 (Unsupported Transport Protocol).
func ParseRequestedTransport(v []byte) (uint8, error) {
	if len(v) != 4 {
		return 0, errLen(stun.AttrRequestedTransport, len(v), "4")
	}
	return v[0], nil
}

// AppendLifetime appends LIFETIME, d in whole seconds. RFC 8656,
// Section 18.2. A fraction of a second rounds up, so a short positive d
// never turns into 0, which deletes an allocation (Section 7.3); a negative
// d is sent as 0 and one past the 32-bit range as the largest value.
func AppendLifetime(b []byte, d time.Duration) []byte {
	var s uint64
	if d > 0 {
		s = uint64(d / time.Second)
		if d%time.Second != 0 {
			s++
		}
	}
	return stun.AppendUint32Attr(b, stun.AttrLifetime, uint32(min(s, math.MaxUint32)))
}

// ParseLifetime decodes a LIFETIME value. RFC 8656, Section 18.2.
func ParseLifetime(v []byte) (time.Duration, error) {
	if len(v) != 4 {
		return 0, errLen(stun.AttrLifetime, len(v), "4")
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Second, nil
}

// AppendChannelNumber appends CHANNEL-NUMBER: the number and two RFFU bytes
// set to zero. RFC 8656, Section 18.1.
func AppendChannelNumber(b []byte, ch uint16) []byte {
	return stun.AppendUint32Attr(b, stun.AttrChannelNumber, uint32(ch)<<16)
}

// ParseChannelNumber decodes a CHANNEL-NUMBER value, ignoring the RFFU
// bytes (RFC 8656, Section 18.1). The number is returned as sent; check it
// with ValidChannel (a ChannelBind with an invalid number gets 400, Section
// 12.2).
func ParseChannelNumber(v []byte) (uint16, error) {
	if len(v) != 4 {
		return 0, errLen(stun.AttrChannelNumber, len(v), "4")
	}
	return binary.BigEndian.Uint16(v), nil
}

// evenPortReserve is the R bit of EVEN-PORT.
const evenPortReserve = 0x80

// AppendEvenPort appends EVEN-PORT, a one-byte value whose high bit R asks
// the server to reserve the next port too. RFC 8656, Section 18.7.
func AppendEvenPort(b []byte, reserve bool) []byte {
	var v byte
	if reserve {
		v = evenPortReserve
	}
	return stun.AppendAttr(b, stun.AttrEvenPort, []byte{v})
}

// ParseEvenPort decodes an EVEN-PORT value: one byte, of which the seven
// RFFU bits are ignored. RFC 8656, Section 18.7.
func ParseEvenPort(v []byte) (reserve bool, err error) {
	if len(v) != 1 {
		return false, errLen(stun.AttrEvenPort, len(v), "1")
	}
	return v[0]&evenPortReserve != 0, nil
}

// AppendReservationToken appends RESERVATION-TOKEN. RFC 8656,
// Section 18.10.
func AppendReservationToken(b []byte, tok [8]byte) []byte {
	return stun.AppendUint64Attr(b, stun.AttrReservationToken, binary.BigEndian.Uint64(tok[:]))
}

// ParseReservationToken decodes a RESERVATION-TOKEN value. RFC 8656,
// Section 18.10.
func ParseReservationToken(v []byte) ([8]byte, error) {
	var tok [8]byte
	if len(v) != len(tok) {
		return tok, errLen(stun.AttrReservationToken, len(v), "8")
	}
	copy(tok[:], v)
	return tok, nil
}

// AppendConnectionID appends CONNECTION-ID. RFC 6062, Section 6.2.
func AppendConnectionID(b []byte, id uint32) []byte {
	return stun.AppendUint32Attr(b, stun.AttrConnectionID, id)
}

// ParseConnectionID decodes a CONNECTION-ID value. RFC 6062, Section 6.2.
func ParseConnectionID(v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, errLen(stun.AttrConnectionID, len(v), "4")
	}
	return binary.BigEndian.Uint32(v), nil
}

// AppendICMP appends an ICMP attribute: two reserved zero bytes, the ICMP
// type, the ICMP code and four bytes of error data (the next-hop MTU for
// "packet too big" and "fragmentation needed", else zero). RFC 8656,
// Section 18.13.
//
// The RFC's figure draws the type as 7 bits and the code as 9; ICMP types
// and codes are 8 bits each (RFC 792, RFC 4443), so this package puts them
// in the third and fourth bytes, as other byte-oriented implementations do.
func AppendICMP(b []byte, typ, code uint8, data uint32) []byte {
	return stun.AppendUint64Attr(b, stun.AttrIcmp, uint64(typ)<<40|uint64(code)<<32|uint64(data))
}

// ParseICMP decodes an ICMP value, ignoring the reserved bytes. RFC 8656,
// Section 18.13.
func ParseICMP(v []byte) (typ, code uint8, data uint32, err error) {
	if len(v) != 8 {
		return 0, 0, 0, errLen(stun.AttrIcmp, len(v), "8")
	}
	return v[2], v[3], binary.BigEndian.Uint32(v[4:8]), nil
}
