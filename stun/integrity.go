package stun

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
)

// Sizes of the integrity attributes' values. RFC 8489, Sections 14.5-14.7.
const (
	MessageIntegritySize       = 20
	MessageIntegritySHA256Size = 32
	FingerprintSize            = 4
)

// fingerprintXOR is XORed into the CRC-32 of FINGERPRINT. RFC 8489,
// Section 14.7.
const fingerprintXOR uint32 = 0x5354554e

// Errors of the integrity checks.
var (
	// ErrIntegrity reports a MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256
	// value that does not match the key.
	ErrIntegrity = errors.New("stun: message integrity check failed")
	// ErrFingerprint reports a FINGERPRINT value that does not match.
	ErrFingerprint = errors.New("stun: fingerprint mismatch")
)

// AppendMessageIntegrity appends MESSAGE-INTEGRITY, the HMAC-SHA1 of the
// message so far under key, with the length field counting the attribute
// itself. Append FINGERPRINT, if wanted, afterwards. RFC 8489, Section 14.5.
func AppendMessageIntegrity(b []byte, key []byte) []byte {
	return appendHMAC(b, AttrMessageIntegrity, hmac.New(sha1.New, key), MessageIntegritySize)
}

// AppendMessageIntegritySHA256 appends MESSAGE-INTEGRITY-SHA256, the full
// 32-byte HMAC-SHA256 of the message so far. RFC 8489, Section 14.6.
func AppendMessageIntegritySHA256(b []byte, key []byte) []byte {
	return appendHMAC(b, AttrMessageIntegritySHA256, hmac.New(sha256.New, key), MessageIntegritySHA256Size)
}

func appendHMAC(b []byte, t AttrType, h hash.Hash, n int) []byte {
	start := len(b)
	b = appendAttrHeader(b, t, n)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)+n-HeaderSize))
	h.Write(b[:start])
	b = h.Sum(b)
	return finishAttr(b, n)
}

// AppendFingerprint appends FINGERPRINT, which must be the last attribute.
// RFC 8489, Section 14.7.
func AppendFingerprint(b []byte) []byte {
	start := len(b)
	b = appendAttrHeader(b, AttrFingerprint, FingerprintSize)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)+FingerprintSize-HeaderSize))
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[:start])^fingerprintXOR)
	return b
}

// headerFor returns a copy of the header of m with the length field set
// as it was when the attribute at offset off (of value length n) was the
// last one.
func (m *Message) headerFor(off, n int) [HeaderSize]byte {
	var h [HeaderSize]byte
	copy(h[:], m.Raw[:HeaderSize])
	binary.BigEndian.PutUint16(h[2:4], uint16(off-HeaderSize+AttrHeaderSize+pad4(n)))
	return h
}

// CheckFingerprint verifies the FINGERPRINT attribute. It returns an error
// wrapping ErrAttrNotFound when there is none.
func (m *Message) CheckFingerprint() error {
	a, ok := m.attr(AttrFingerprint)
	if !ok {
		return fmt.Errorf("%w: %s", ErrAttrNotFound, AttrFingerprint)
	}
	if len(a.Value) != FingerprintSize {
		return errLen("FINGERPRINT", len(a.Value))
	}
	// The CRC covers the header with the length field counting
	// FINGERPRINT. The length bytes are fed one by one: a header copy
	// handed to crc32.Update would escape to the heap.
	n := uint16(a.Offset - HeaderSize + AttrHeaderSize + FingerprintSize)
	crc := crc32.Update(0, crc32.IEEETable, m.Raw[0:2])
	crc = crcByte(crc, byte(n>>8))
	crc = crcByte(crc, byte(n))
	crc = crc32.Update(crc, crc32.IEEETable, m.Raw[4:a.Offset])
	if crc^fingerprintXOR != binary.BigEndian.Uint32(a.Value) {
		return ErrFingerprint
	}
	return nil
}

// crcByte adds one byte to an IEEE CRC-32, as crc32.Update would.
func crcByte(crc uint32, b byte) uint32 {
	crc = ^crc
	crc = crc32.IEEETable[byte(crc)^b] ^ crc>>8
	return ^crc
}

// CheckIntegrity verifies MESSAGE-INTEGRITY under key. It returns an
// error wrapping ErrAttrNotFound when there is none. RFC 8489,
// Section 14.5.
func (m *Message) CheckIntegrity(key []byte) error {
	return m.checkHMAC(AttrMessageIntegrity, hmac.New(sha1.New, key), MessageIntegritySize, MessageIntegritySize)
}

// CheckIntegritySHA256 verifies MESSAGE-INTEGRITY-SHA256 under key. The
// value may be truncated to as few as 16 bytes, in steps of 4. RFC 8489,
// Section 14.6.
func (m *Message) CheckIntegritySHA256(key []byte) error {
	return m.checkHMAC(AttrMessageIntegritySHA256, hmac.New(sha256.New, key), 16, MessageIntegritySHA256Size)
}

func (m *Message) checkHMAC(t AttrType, h hash.Hash, min, max int) error {
	a, ok := m.attr(t)
	if !ok {
		return fmt.Errorf("%w: %s", ErrAttrNotFound, t)
	}
	if n := len(a.Value); n < min || n > max || n%4 != 0 {
		return errLen(t.String(), n)
	}
	hdr := m.headerFor(a.Offset, len(a.Value))
	h.Write(hdr[:])
	h.Write(m.Raw[HeaderSize:a.Offset])
	var sum [sha256.Size]byte
	got := h.Sum(sum[:0])
	if subtle.ConstantTimeCompare(got[:len(a.Value)], a.Value) != 1 {
		return ErrIntegrity
	}
	return nil
}
