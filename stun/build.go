package stun

import "encoding/binary"

// AppendHeader appends a STUN header for type t and transaction id to b and
// returns the extended buffer. The message must start at b[0]: pass a
// buffer sliced to zero length. RFC 8489, Section 5.
func AppendHeader(b []byte, t Type, id TransactionID) []byte {
	b = binary.BigEndian.AppendUint16(b, t.Value())
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, MagicCookie)
	b = append(b, id[:]...)
	return b
}

// AppendClassicHeader appends the header of an RFC 3489 message, whose
// 128-bit transaction ID is cookie followed by id. Servers use it to answer
// classic clients with the ID they sent.
func AppendClassicHeader(b []byte, t Type, cookie uint32, id TransactionID) []byte {
	b = binary.BigEndian.AppendUint16(b, t.Value())
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, cookie)
	b = append(b, id[:]...)
	return b
}

// AppendAttr appends an attribute with the given value, padded with zeros to
// a multiple of 4 bytes, and updates the message length. RFC 8489,
// Section 14.
func AppendAttr(b []byte, t AttrType, v []byte) []byte {
	b = appendAttrHeader(b, t, len(v))
	b = append(b, v...)
	return finishAttr(b, len(v))
}

// AppendAttrString is AppendAttr for a string value.
func AppendAttrString(b []byte, t AttrType, v string) []byte {
	b = appendAttrHeader(b, t, len(v))
	b = append(b, v...)
	return finishAttr(b, len(v))
}

// AppendUint32Attr appends a 4-byte attribute such as LIFETIME or PRIORITY.
func AppendUint32Attr(b []byte, t AttrType, v uint32) []byte {
	b = appendAttrHeader(b, t, 4)
	b = binary.BigEndian.AppendUint32(b, v)
	return finishAttr(b, 4)
}

// AppendUint64Attr appends an 8-byte attribute such as ICE-CONTROLLING.
func AppendUint64Attr(b []byte, t AttrType, v uint64) []byte {
	b = appendAttrHeader(b, t, 8)
	b = binary.BigEndian.AppendUint64(b, v)
	return finishAttr(b, 8)
}

// Uint32 decodes a 4-byte attribute value.
func Uint32(v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, errLen("32-bit attribute", len(v))
	}
	return binary.BigEndian.Uint32(v), nil
}

// Uint64 decodes an 8-byte attribute value.
func Uint64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, errLen("64-bit attribute", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func appendAttrHeader(b []byte, t AttrType, n int) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	return binary.BigEndian.AppendUint16(b, uint16(n))
}

// finishAttr pads the attribute just written (of value length n) and
// updates the header's length field.
func finishAttr(b []byte, n int) []byte {
	for i := n; i%4 != 0; i++ {
		b = append(b, 0)
	}
	setLength(b)
	return b
}

func setLength(b []byte) {
	if len(b) >= HeaderSize {
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-HeaderSize))
	}
}
