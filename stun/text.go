package stun

import (
	"fmt"
	"unicode/utf8"
)

// Size limits of the text attributes, in bytes. RFC 8489, Sections 14.3,
// 14.9-14.11, 14.14 and 14.16.
const (
	MaxUsername        = 509 // USERNAME: < 513 bytes
	MaxRealm           = 763 // REALM: < 128 characters, at most 763 bytes
	MaxNonce           = 763 // NONCE: < 128 characters, at most 763 bytes
	MaxSoftware        = 763 // SOFTWARE: < 128 characters, at most 763 bytes
	MaxAlternateDomain = 255 // ALTERNATE-DOMAIN: a DNS name, at most 255 bytes
)

var textLimits = map[AttrType]int{
	AttrUsername:        MaxUsername,
	AttrRealm:           MaxRealm,
	AttrNonce:           MaxNonce,
	AttrSoftware:        MaxSoftware,
	AttrAlternateDomain: MaxAlternateDomain,
}

// ParseText checks a text attribute value (USERNAME, REALM, NONCE,
// SOFTWARE, ALTERNATE-DOMAIN): its length limit and that it is UTF-8. It
// returns v itself, so it allocates nothing.
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
