package stun

import "fmt"

// Kind is what the first byte of a packet says it is, by the rule of RFC
// 7983, Section 7, as updated by RFC 9443 (which gives TURN ChannelData
// 64-79 and QUIC the rest of 64-127; QUIC is reported as KindUnknown).
type Kind uint8

// Packet kinds.
const (
	KindUnknown     Kind = iota
	KindSTUN             // 0-3
	KindZRTP             // 16-19
	KindDTLS             // 20-63
	KindChannelData      // 64-79: TURN ChannelData, RFC 8656 Section 12
	KindRTP              // 128-191: RTP and RTCP
)

func (k Kind) String() string {
	switch k {
	case KindSTUN:
		return "STUN"
	case KindZRTP:
		return "ZRTP"
	case KindDTLS:
		return "DTLS"
	case KindChannelData:
		return "ChannelData"
	case KindRTP:
		return "RTP/RTCP"
	}
	return "unknown"
}

// Classify returns the kind of a packet by its first byte, so one socket
// can carry STUN, TURN ChannelData and application data. It does not
// validate the packet; run Is or Parse on what it calls STUN.
func Classify(b []byte) Kind {
	if len(b) == 0 {
		return KindUnknown
	}
	switch c := b[0]; {
	case c <= 3:
		return KindSTUN
	case c >= 16 && c <= 19:
		return KindZRTP
	case c >= 20 && c <= 63:
		return KindDTLS
	case c >= 64 && c <= 79:
		return KindChannelData
	case c >= 128 && c <= 191:
		return KindRTP
	}
	return KindUnknown
}

// Demultiplexing STUN from what shares its socket or stream. STUN packets
// are told apart by their first byte (RFC 7983, Section 7): every STUN
// message starts with two zero bits (RFC 8489, Section 5), of which RFC
// 7983 assigns 0-3 to STUN where DTLS (20-63) and ZRTP (16-19) share the
// socket too; on a STUN or TURN server's port they do not, so a framer
// here takes 0-63 as STUN, as MessageLength does. Anything else belongs
// to another protocol, which frames it itself: a TURN server or client
// takes ChannelData (package turn decides its range and frame length). The
// STUN layer knows nothing of that protocol.

// IsSTUNByte reports whether a packet or stream message whose first byte
// is c is STUN by its first two bits; anything else is for another
// protocol (RFC 7983, Section 7).
func IsSTUNByte(c byte) bool { return c&0xC0 == 0 }

// FrameFunc frames a message of another protocol that shares a stream
// with STUN. b is the start of the message, at least one byte, whose first
// byte is not STUN's. It returns the message's whole length n (padding
// included); or n = 0 and the number of bytes it needs to decide (more
// than len(b)); or an error when b does not start a message it takes, and
// the stream has lost its framing. It must not keep b.
type FrameFunc func(b []byte) (n, need int, err error)

// StreamFrame returns the length of the message at the start of b on a
// stream transport (TCP, TLS) that carries STUN messages and, through
// other, another protocol's: a STUN message is framed by its header's
// length field (RFC 8489, Section 6.2.2), anything else by other. With
// too few bytes to decide it returns n = 0 and how many it needs. A
// message that is neither, or a nil other for a message that is not STUN,
// is an error wrapping ErrNotSTUN: the stream has lost its framing. It
// does not bound n; the caller does. It allocates nothing.
func StreamFrame(b []byte, other FrameFunc) (n, need int, isSTUN bool, err error) {
	if len(b) == 0 {
		return 0, 1, false, nil
	}
	if !IsSTUNByte(b[0]) {
		if other == nil {
			return 0, 0, false, errOtherStream
		}
		n, need, err = other(b)
		if err != nil {
			return 0, 0, false, fmt.Errorf("%w: %w", ErrNotSTUN, err)
		}
		return n, need, false, nil
	}
	if len(b) < HeaderSize {
		return 0, HeaderSize, true, nil
	}
	n, err = MessageLength(b)
	if err != nil {
		return 0, 0, true, err
	}
	return n, 0, true, nil
}

var errOtherStream = fmt.Errorf("%w: first byte is not STUN and nothing else is carried", ErrNotSTUN)
