package stun

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// MagicCookie is the fixed value of bytes 4-7 of every RFC 8489 message.
// RFC 8489, Section 5.
const MagicCookie uint32 = 0x2112A442

// HeaderSize is the size of the STUN message header.
const HeaderSize = 20

// AttrHeaderSize is the size of an attribute's type and length fields.
const AttrHeaderSize = 4

// TransactionID is the 96-bit transaction ID of RFC 8489, Section 5.
type TransactionID [12]byte

// NewTransactionID returns a transaction ID drawn from crypto/rand, as RFC
// 8489, Section 5 requires ("uniformly and randomly chosen").
func NewTransactionID() TransactionID {
	var id TransactionID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails on Linux.
	return id
}

// Method is a STUN method: the 12 bits of the message type that are not the
// class. RFC 8489, Section 5.
type Method uint16

// Methods registered for STUN and TURN. RFC 8489, Section 18.2; RFC 8656,
// Section 17; RFC 6062, Section 6.1.
const (
	MethodBinding           Method = 0x001
	MethodAllocate          Method = 0x003
	MethodRefresh           Method = 0x004
	MethodSend              Method = 0x006
	MethodData              Method = 0x007
	MethodCreatePermission  Method = 0x008
	MethodChannelBind       Method = 0x009
	MethodConnect           Method = 0x00a
	MethodConnectionBind    Method = 0x00b
	MethodConnectionAttempt Method = 0x00c
)

func (m Method) String() string {
	switch m {
	case MethodBinding:
		return "Binding"
	case MethodAllocate:
		return "Allocate"
	case MethodRefresh:
		return "Refresh"
	case MethodSend:
		return "Send"
	case MethodData:
		return "Data"
	case MethodCreatePermission:
		return "CreatePermission"
	case MethodChannelBind:
		return "ChannelBind"
	case MethodConnect:
		return "Connect"
	case MethodConnectionBind:
		return "ConnectionBind"
	case MethodConnectionAttempt:
		return "ConnectionAttempt"
	}
	return fmt.Sprintf("Method(0x%03x)", uint16(m))
}

// Class is the class of a STUN message. RFC 8489, Section 5.
type Class uint8

// The four classes.
const (
	ClassRequest    Class = 0
	ClassIndication Class = 1
	ClassSuccess    Class = 2
	ClassError      Class = 3
)

func (c Class) String() string {
	switch c {
	case ClassRequest:
		return "request"
	case ClassIndication:
		return "indication"
	case ClassSuccess:
		return "success response"
	case ClassError:
		return "error response"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Type is a message type: a method and a class.
type Type struct {
	Method Method
	Class  Class
}

// Common message types.
var (
	BindingRequest    = Type{MethodBinding, ClassRequest}
	BindingSuccess    = Type{MethodBinding, ClassSuccess}
	BindingError      = Type{MethodBinding, ClassError}
	BindingIndication = Type{MethodBinding, ClassIndication}
)

// Value encodes t as the 14-bit message type field:
//
//	 0                 1
//	 2  3  4 5 6 7 8 9 0 1 2 3 4 5
//	+--+--+-+-+-+-+-+-+-+-+-+-+-+-+
//	|M |M |M|M|M|C|M|M|M|C|M|M|M|M|
//	|11|10|9|8|7|1|6|5|4|0|3|2|1|0|
//	+--+--+-+-+-+-+-+-+-+-+-+-+-+-+
//
// RFC 8489, Section 5.
func (t Type) Value() uint16 {
	m := uint16(t.Method) & 0xfff
	c := uint16(t.Class) & 0x3
	return (m & 0x000f) | (m&0x0070)<<1 | (m&0x0f80)<<2 | (c&1)<<4 | (c&2)<<7
}

// TypeFromValue decodes a 14-bit message type field.
func TypeFromValue(v uint16) Type {
	m := (v & 0x000f) | (v&0x00e0)>>1 | (v&0x3e00)>>2
	c := (v>>4)&1 | (v>>7)&2
	return Type{Method(m), Class(c)}
}

func (t Type) String() string { return t.Method.String() + " " + t.Class.String() }

// Errors returned by Parse. Callers branch on them with errors.Is.
var (
	// ErrNotSTUN reports bytes that are not a STUN message at all: too
	// short, the top two bits set, or a length that is not a multiple of 4.
	ErrNotSTUN = errors.New("stun: not a STUN message")
	// ErrTruncated reports a header or attribute length that runs past the
	// end of the buffer.
	ErrTruncated = errors.New("stun: message truncated")
	// ErrMalformed reports a message whose attributes break RFC 8489's rules.
	ErrMalformed = errors.New("stun: malformed message")
	// ErrAttrNotFound reports that an attribute is absent.
	ErrAttrNotFound = errors.New("stun: attribute not found")
)

// RawAttr is an attribute as it appears on the wire. Value refers to the
// parsed buffer.
type RawAttr struct {
	Type  AttrType
	Value []byte
	// Offset is the position of the attribute header from the start of
	// the message.
	Offset int
}

// inlineAttrs is how many attributes a Message holds without allocating.
const inlineAttrs = 16

// Message is a parsed STUN message. It refers to the buffer given to Parse
// and is valid only while that buffer is unchanged.
//
// A Message is not safe for concurrent use. Its zero value is an empty
// message, ready for Parse. Reusing one Message for many Parse calls
// allocates nothing for messages of up to 16 attributes.
type Message struct {
	Type          Type
	TransactionID TransactionID
	// Classic is true for an RFC 3489 message: one whose bytes 4-7 are not
	// the magic cookie. For such a message TransactionID holds bytes 8-19
	// and Cookie holds bytes 4-7: together they are the 128-bit RFC 3489
	// transaction ID.
	Classic bool
	Cookie  uint32
	// Raw is the whole message, header included.
	Raw []byte
	// Attrs lists the attributes in wire order, without those that RFC
	// 8489, Section 14.5 says to ignore (any after MESSAGE-INTEGRITY other
	// than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, any after
	// MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT).
	Attrs []RawAttr
	inl   [inlineAttrs]RawAttr
}

// Is reports whether b could be a STUN message with the magic cookie: the
// first two bits are zero, the length is a multiple of 4 and matches the
// buffer, and bytes 4-7 hold the cookie. It is the cheap check to run
// before Parse on a socket that carries other protocols.
func Is(b []byte) bool {
	if len(b) < HeaderSize || b[0]&0xc0 != 0 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && n+HeaderSize == len(b) && binary.BigEndian.Uint32(b[4:8]) == MagicCookie
}

// MessageLength returns the total size of the STUN message that starts at
// b[0], as its header says, or an error if b holds less than a header or
// the header is not STUN. Stream transports use it to frame messages
// (RFC 8489, Section 6.2.2).
func MessageLength(b []byte) (int, error) {
	if len(b) < HeaderSize {
		return 0, ErrTruncated
	}
	if b[0]&0xc0 != 0 {
		return 0, ErrNotSTUN
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 {
		return 0, ErrNotSTUN
	}
	return HeaderSize + n, nil
}

// Parse decodes the STUN message in b into m, reading in place. b must hold
// exactly one message (datagram framing); trailing bytes are an error.
// Messages without the magic cookie are accepted and marked Classic, so that
// a server can answer RFC 3489 clients.
//
// Parse checks the framing rules of RFC 8489, Sections 5 and 14: the length
// is a multiple of 4 and matches the buffer, every attribute fits, and
// FINGERPRINT, when present, is the last attribute. It does not check
// MESSAGE-INTEGRITY or FINGERPRINT values; see CheckIntegrity and
// CheckFingerprint.
func (m *Message) Parse(b []byte) error {
	m.Attrs = m.inl[:0]
	m.Raw = nil
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, need %d", ErrTruncated, len(b), HeaderSize)
	}
	if b[0]&0xc0 != 0 {
		return fmt.Errorf("%w: first two bits are not zero", ErrNotSTUN)
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 {
		return fmt.Errorf("%w: length %d is not a multiple of 4", ErrNotSTUN, n)
	}
	if HeaderSize+n != len(b) {
		if HeaderSize+n > len(b) {
			return fmt.Errorf("%w: header says %d bytes, have %d", ErrTruncated, HeaderSize+n, len(b))
		}
		return fmt.Errorf("%w: header says %d bytes, have %d", ErrMalformed, HeaderSize+n, len(b))
	}
	m.Type = TypeFromValue(binary.BigEndian.Uint16(b[0:2]))
	m.Cookie = binary.BigEndian.Uint32(b[4:8])
	m.Classic = m.Cookie != MagicCookie
	copy(m.TransactionID[:], b[8:20])
	m.Raw = b

	var sawMI, sawMI256 bool
	for off := HeaderSize; off < len(b); {
		if len(b)-off < AttrHeaderSize {
			return fmt.Errorf("%w: attribute header at offset %d", ErrTruncated, off)
		}
		t := AttrType(binary.BigEndian.Uint16(b[off : off+2]))
		l := int(binary.BigEndian.Uint16(b[off+2 : off+4]))
		end := off + AttrHeaderSize + l
		padded := off + AttrHeaderSize + pad4(l)
		if padded > len(b) {
			return fmt.Errorf("%w: attribute %s at offset %d claims %d bytes", ErrTruncated, t, off, l)
		}
		a := RawAttr{Type: t, Value: b[off+AttrHeaderSize : end : end], Offset: off}
		off = padded
		switch {
		case t == AttrFingerprint:
			if off != len(b) {
				return fmt.Errorf("%w: FINGERPRINT is not the last attribute", ErrMalformed)
			}
		case sawMI256:
			continue // RFC 8489, Section 14.6: only FINGERPRINT may follow.
		case sawMI && t != AttrMessageIntegritySHA256:
			continue // RFC 8489, Section 14.5: ignored after MESSAGE-INTEGRITY.
		}
		switch t {
		case AttrMessageIntegrity:
			sawMI = true
		case AttrMessageIntegritySHA256:
			sawMI256 = true
		}
		m.Attrs = append(m.Attrs, a)
	}
	return nil
}

// Get returns the value of the first attribute of type t.
func (m *Message) Get(t AttrType) ([]byte, bool) {
	for i := range m.Attrs {
		if m.Attrs[i].Type == t {
			return m.Attrs[i].Value, true
		}
	}
	return nil, false
}

// Has reports whether the message carries an attribute of type t.
func (m *Message) Has(t AttrType) bool {
	_, ok := m.Get(t)
	return ok
}

func (m *Message) attr(t AttrType) (RawAttr, bool) {
	for _, a := range m.Attrs {
		if a.Type == t {
			return a, true
		}
	}
	return RawAttr{}, false
}

func pad4(n int) int { return (n + 3) &^ 3 }
