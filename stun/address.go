package stun

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Address families of MAPPED-ADDRESS and its XOR variants. RFC 8489,
// Section 14.1.
const (
	FamilyIPv4 byte = 0x01
	FamilyIPv6 byte = 0x02
)

// AppendAddress appends a MAPPED-ADDRESS-style attribute (MAPPED-ADDRESS,
// ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS). IPv4-mapped IPv6
// addresses are written as IPv4. RFC 8489, Section 14.1.
func AppendAddress(b []byte, t AttrType, a netip.AddrPort) []byte {
	ip := a.Addr().Unmap()
	n := 8
	fam := FamilyIPv4
	if ip.Is6() {
		n, fam = 20, FamilyIPv6
	}
	b = appendAttrHeader(b, t, n)
	b = append(b, 0, fam)
	b = binary.BigEndian.AppendUint16(b, a.Port())
	switch {
	case ip.Is6():
		a16 := ip.As16()
		b = append(b, a16[:]...)
	case ip.Is4():
		a4 := ip.As4()
		b = append(b, a4[:]...)
	default: // the zero Addr: write 0.0.0.0 rather than panic.
		b = append(b, 0, 0, 0, 0)
	}
	return finishAttr(b, n)
}

// AppendXORAddress appends an XOR-MAPPED-ADDRESS-style attribute
// (XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS). RFC 8489,
// Section 14.2.
func AppendXORAddress(b []byte, t AttrType, a netip.AddrPort, id TransactionID) []byte {
	start := len(b)
	b = AppendAddress(b, t, a)
	xorAddress(b[start+AttrHeaderSize:], id)
	return b
}

// ParseAddress decodes a MAPPED-ADDRESS-style value.
func ParseAddress(v []byte) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, errLen("address", len(v))
	}
	port := binary.BigEndian.Uint16(v[2:4])
	switch v[1] {
	case FamilyIPv4:
		if len(v) != 8 {
			return netip.AddrPort{}, errLen("IPv4 address", len(v))
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(v[4:8])), port), nil
	case FamilyIPv6:
		if len(v) != 20 {
			return netip.AddrPort{}, errLen("IPv6 address", len(v))
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(v[4:20])), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("%w: unknown address family 0x%02x", ErrMalformed, v[1])
}

// ParseXORAddress decodes an XOR-MAPPED-ADDRESS-style value.
func ParseXORAddress(v []byte, id TransactionID) (netip.AddrPort, error) {
	if len(v) != 8 && len(v) != 20 {
		return netip.AddrPort{}, errLen("XOR address", len(v))
	}
	var tmp [20]byte
	copy(tmp[:], v)
	xorAddress(tmp[:len(v)], id)
	return ParseAddress(tmp[:len(v)])
}

// xorAddress applies the XOR of RFC 8489, Section 14.2 to an address value
// in place: the port with the cookie's top 16 bits, the address with the
// cookie and then the transaction ID.
func xorAddress(v []byte, id TransactionID) {
	var key [16]byte
	binary.BigEndian.PutUint32(key[:4], MagicCookie)
	copy(key[4:], id[:])
	v[2] ^= key[0]
	v[3] ^= key[1]
	for i := 4; i < len(v); i++ {
		v[i] ^= key[i-4]
	}
}

// MappedAddress returns the decoded MAPPED-ADDRESS.
func (m *Message) MappedAddress() (netip.AddrPort, error) {
	return m.address(AttrMappedAddress)
}

// XORMappedAddress returns the decoded XOR-MAPPED-ADDRESS.
func (m *Message) XORMappedAddress() (netip.AddrPort, error) {
	return m.xorAddress(AttrXORMappedAddress)
}

// ReflexiveAddress returns XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS for a
// server that sent only that (an RFC 3489 server). RFC 8489, Section 14.1.
func (m *Message) ReflexiveAddress() (netip.AddrPort, error) {
	if m.Has(AttrXORMappedAddress) {
		return m.XORMappedAddress()
	}
	return m.MappedAddress()
}

// Address decodes the MAPPED-ADDRESS-style attribute t.
func (m *Message) Address(t AttrType) (netip.AddrPort, error) { return m.address(t) }

// XORAddress decodes the XOR-MAPPED-ADDRESS-style attribute t.
func (m *Message) XORAddress(t AttrType) (netip.AddrPort, error) { return m.xorAddress(t) }

func (m *Message) address(t AttrType) (netip.AddrPort, error) {
	v, ok := m.Get(t)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: %s", ErrAttrNotFound, t)
	}
	return ParseAddress(v)
}

func (m *Message) xorAddress(t AttrType) (netip.AddrPort, error) {
	v, ok := m.Get(t)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: %s", ErrAttrNotFound, t)
	}
	return ParseXORAddress(v, m.TransactionID)
}

func errLen(what string, n int) error {
	return fmt.Errorf("%w: %s of %d bytes", ErrMalformed, what, n)
}
