package stun

import (
	"encoding/binary"
	"slices"
	"testing"
)

// wireAttr describes one attribute for rawMessage. Unlike AppendAttr it can
// pad with any byte and lie about its length.
type wireAttr struct {
	typ AttrType
	val []byte
	pad byte
	// lie makes the length field say declared instead of len(val).
	lie      bool
	declared int
}

func attr(t AttrType, v string) wireAttr { return wireAttr{typ: t, val: []byte(v)} }

// rawMessage writes a STUN message byte by byte, independently of the
// package's encoder: header with the given type value and cookie, then the
// attributes, padded with their pad byte. The header length counts what
// was written.
func rawMessage(typ uint16, cookie uint32, id TransactionID, attrs ...wireAttr) []byte {
	b := make([]byte, HeaderSize, 256)
	binary.BigEndian.PutUint16(b[0:2], typ)
	binary.BigEndian.PutUint32(b[4:8], cookie)
	copy(b[8:20], id[:])
	for _, a := range attrs {
		l := len(a.val)
		if a.lie {
			l = a.declared
		}
		b = binary.BigEndian.AppendUint16(b, uint16(a.typ))
		b = binary.BigEndian.AppendUint16(b, uint16(l))
		b = append(b, a.val...)
		for len(b)%4 != 0 {
			b = append(b, a.pad)
		}
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-HeaderSize))
	return b
}

var testID = TransactionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func mustParse(t testing.TB, b []byte) *Message {
	t.Helper()
	m := new(Message)
	if err := m.Parse(b); err != nil {
		t.Fatalf("Parse(%x): %v", b, err)
	}
	return m
}

// attrTypes lists the types of m.Attrs in order.
func attrTypes(m *Message) []AttrType {
	out := make([]AttrType, 0, len(m.Attrs))
	for _, a := range m.Attrs {
		out = append(out, a.Type)
	}
	return out
}

func sameTypes(a, b []AttrType) bool { return slices.Equal(a, b) }
