package stun

import (
	"fmt"
	"unicode/utf8"
)

// Size limits of the text attributes a sender may use, in bytes: USERNAME
// fewer than 509 bytes (Section 14.3); REALM, NONCE and SOFTWARE fewer than
// 128 characters, at most 509 bytes (Sections 14.9, 14.10, 14.14);
// ALTERNATE-DOMAIN a DNS name of at most 255 bytes (Section 14.16). RFC 8489.
const (
	MaxUsername        = 508
	MaxRealm           = 509
	MaxNonce           = 509
	MaxSoftware        = 509
	MaxAlternateDomain = 255
)

// maxTextReceive is the most ParseText accepts in USERNAME, REALM, NONCE
// and SOFTWARE: RFC 8489 requires receivers to take up to 763 bytes, for
// compatibility with RFC 5389 (Sections 14.3, 14.9, 14.10, 14.14).
const maxTextReceive = 763

var textLimits = map[AttrType]int{
	AttrUsername:        maxTextReceive,
	AttrRealm:           maxTextReceive,
	AttrNonce:           maxTextReceive,
	AttrSoftware:        maxTextReceive,
	AttrAlternateDomain: MaxAlternateDomain,
}

// ParseText checks a received text attribute value (USERNAME, REALM,
// NONCE, SOFTWARE, ALTERNATE-DOMAIN): that it is UTF-8 and within the
// receive limit (763 bytes; 255 for ALTERNATE-DOMAIN). Other attribute
// types are checked for UTF-8 only. It returns v itself, so it allocates
// nothing.
func ParseText(t AttrType, v []byte) ([]byte, error) {
	if max, ok := textLimits[t]; ok && len(v) > max {
		return nil, fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrMalformed, t, len(v), max)
	}
	if !utf8.Valid(v) {
		return nil, fmt.Errorf("%w: %s is not UTF-8", ErrMalformed, t)
	}
	return v, nil
}

// Text returns the checked value of text attribute t as a string.
func (m *Message) Text(t AttrType) (string, error) {
	v, ok := m.Get(t)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrAttrNotFound, t)
	}
	v, err := ParseText(t, v)
	return string(v), err
}

// Username returns the USERNAME attribute.
func (m *Message) Username() (string, error) { return m.Text(AttrUsername) }

// Realm returns the REALM attribute.
func (m *Message) Realm() (string, error) { return m.Text(AttrRealm) }

// Nonce returns the NONCE attribute.
func (m *Message) Nonce() (string, error) { return m.Text(AttrNonce) }

// Software returns the SOFTWARE attribute.
func (m *Message) Software() (string, error) { return m.Text(AttrSoftware) }

// AlternateDomain returns the ALTERNATE-DOMAIN attribute.
func (m *Message) AlternateDomain() (string, error) { return m.Text(AttrAlternateDomain) }
