package turn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Family is an address family of REQUESTED-ADDRESS-FAMILY,
// ADDITIONAL-ADDRESS-FAMILY and ADDRESS-ERROR-CODE: the values of STUN's
// address attributes (RFC 8489, Section 14.1). RFC 8656, Section 18.6,
// which supersedes RFC 6156, Section 4.1.1.
type Family uint8

// Address families.
const (
	FamilyIPv4 Family = 0x01
	FamilyIPv6 Family = 0x02
)

func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "IPv4"
	case FamilyIPv6:
		return "IPv6"
	}
	return fmt.Sprintf("family 0x%02x", uint8(f))
}

// Valid reports whether f is FamilyIPv4 or FamilyIPv6.
func (f Family) Valid() bool { return f == FamilyIPv4 || f == FamilyIPv6 }

// ErrUnsupportedFamily reports a REQUESTED-ADDRESS-FAMILY with a family
// other than IPv4 and IPv6. A server answers it with 440 (Address Family
// not Supported), RFC 8656, Section 7.2, step 8; other parse errors get 400.
var ErrUnsupportedFamily = errors.New("turn: unsupported address family")

// AppendRequestedAddressFamily appends REQUESTED-ADDRESS-FAMILY: the family
// and three RFFU bytes set to zero. RFC 8656, Section 18.6.
func AppendRequestedAddressFamily(b []byte, f Family) []byte {
	return stun.AppendUint32Attr(b, stun.AttrRequestedAddressFamily, uint32(f)<<24)
}

// ParseRequestedAddressFamily decodes a REQUESTED-ADDRESS-FAMILY value,
// ignoring the RFFU bytes. RFC 8656, Section 18.6. A family other than IPv4
// and IPv6 is returned together with an error wrapping ErrUnsupportedFamily.
func ParseRequestedAddressFamily(v []byte) (Family, error) {
	if len(v) != 4 {
		return 0, errLen(stun.AttrRequestedAddressFamily, len(v), "4")
	}
	f := Family(v[0])
	if !f.Valid() {
		return f, fmt.Errorf("%w: REQUESTED-ADDRESS-FAMILY %s", ErrUnsupportedFamily, f)
	}
	return f, nil
}

// AppendAdditionalAddressFamily appends ADDITIONAL-ADDRESS-FAMILY, which
// has the layout of REQUESTED-ADDRESS-FAMILY. A client sends it with
// FamilyIPv6 to ask for an IPv6 relayed address beside the IPv4 one.
// RFC 8656, Section 18.11.
func AppendAdditionalAddressFamily(b []byte, f Family) []byte {
	return stun.AppendUint32Attr(b, stun.AttrAdditionalAddressFamily, uint32(f)<<24)
}

// ParseAdditionalAddressFamily decodes an ADDITIONAL-ADDRESS-FAMILY value.
// IPv6 is the only valid family (RFC 8656, Section 18.11); any other,
// IPv4 included, is an error wrapping stun.ErrMalformed, since a server
// answers it with 400 (Bad Request), Section 7.2, step 9.
func ParseAdditionalAddressFamily(v []byte) (Family, error) {
	if len(v) != 4 {
		return 0, errLen(stun.AttrAdditionalAddressFamily, len(v), "4")
	}
	f := Family(v[0])
	if f != FamilyIPv6 {
		return f, fmt.Errorf("%w: ADDITIONAL-ADDRESS-FAMILY %s, only IPv6 is allowed", stun.ErrMalformed, f)
	}
	return f, nil
}

// AppendAddressErrorCode appends ADDRESS-ERROR-CODE: why the server did not
// allocate a relayed address of family f when it allocated the other one.
// The layout is ERROR-CODE's with the family in the first byte, and code
// and reason follow stun.AppendErrorCode: code in 300-699, an empty reason
// replaced by stun.ReasonPhrase(code), a long one cut. RFC 8656,
// Section 18.12.
func AppendAddressErrorCode(b []byte, f Family, code int, reason string) []byte {
	start := len(b)
	b = stun.AppendErrorCode(b, code, reason)
	attr := b[start:]
	binary.BigEndian.PutUint16(attr[0:2], uint16(stun.AttrAddressErrorCode))
	attr[4] = byte(f)
	return b
}

// ParseAddressErrorCode decodes an ADDRESS-ERROR-CODE value. The reason
// refers to v. RFC 8656, Section 18.12.
func ParseAddressErrorCode(v []byte) (Family, int, []byte, error) {
	code, reason, err := stun.ParseErrorCode(v)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("ADDRESS-ERROR-CODE: %w", err)
	}
	f := Family(v[0])
	if !f.Valid() {
		return 0, 0, nil, fmt.Errorf("%w: ADDRESS-ERROR-CODE for %s", stun.ErrMalformed, f)
	}
	return f, code, reason, nil
}
