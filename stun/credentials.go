package stun

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/text/secure/precis"
)

// PasswordAlgorithm is a value of the PASSWORD-ALGORITHM registry. RFC
// 8489, Section 18.5.
type PasswordAlgorithm uint16

// The registered password algorithms.
const (
	PasswordMD5    PasswordAlgorithm = 0x0001
	PasswordSHA256 PasswordAlgorithm = 0x0002
)

func (a PasswordAlgorithm) String() string {
	switch a {
	case PasswordMD5:
		return "MD5"
	case PasswordSHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("PasswordAlgorithm(0x%04x)", uint16(a))
}

// PreparePassword applies the OpaqueString profile of RFC 8265 to a
// password or realm, as RFC 8489, Section 9.2.2 requires.
func PreparePassword(s string) (string, error) {
	p, err := precis.OpaqueString.String(s)
	if err != nil {
		return "", fmt.Errorf("stun: preparing credential with OpaqueString: %w", err)
	}
	return p, nil
}

// ShortTermKey returns the key for short-term credentials: the password
// prepared with OpaqueString. RFC 8489, Section 9.1.2.
func ShortTermKey(password string) ([]byte, error) {
	p, err := PreparePassword(password)
	if err != nil {
		return nil, err
	}
	return []byte(p), nil
}

// LongTermKey returns the long-term credential key
//
//	key = H(username ":" OpaqueString(realm) ":" OpaqueString(password))
//
// with H = MD5 (16 bytes) or SHA-256 (32 bytes). The username must already
// be processed as the server's username profile wants (RFC 8489 leaves it
// to the mechanism that provides it). RFC 8489, Section 9.2.2.
func LongTermKey(alg PasswordAlgorithm, username, realm, password string) ([]byte, error) {
	r, err := PreparePassword(realm)
	if err != nil {
		return nil, err
	}
	p, err := PreparePassword(password)
	if err != nil {
		return nil, err
	}
	s := username + ":" + r + ":" + p
	switch alg {
	case PasswordMD5:
		k := md5.Sum([]byte(s))
		return k[:], nil
	case PasswordSHA256:
		k := sha256.Sum256([]byte(s))
		return k[:], nil
	}
	return nil, fmt.Errorf("stun: unsupported password algorithm %s", alg)
}

// Userhash returns the value of USERHASH:
// SHA-256(username ":" OpaqueString(realm)). RFC 8489, Section 14.4.
func Userhash(username, realm string) ([32]byte, error) {
	r, err := PreparePassword(realm)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256([]byte(username + ":" + r)), nil
}

// PasswordAlgorithmParams is one entry of PASSWORD-ALGORITHMS, or the value
// of PASSWORD-ALGORITHM. Params refers to the parsed buffer.
type PasswordAlgorithmParams struct {
	Algorithm PasswordAlgorithm
	Params    []byte
}

// AppendPasswordAlgorithms appends PASSWORD-ALGORITHMS listing algs, in the
// server's order of preference. RFC 8489, Section 14.11.
func AppendPasswordAlgorithms(b []byte, algs []PasswordAlgorithmParams) []byte {
	n := 0
	for _, a := range algs {
		n += 4 + pad4(len(a.Params))
	}
	b = appendAttrHeader(b, AttrPasswordAlgorithms, n)
	for _, a := range algs {
		b = appendAlg(b, a)
	}
	return finishAttr(b, n)
}

// AppendPasswordAlgorithm appends PASSWORD-ALGORITHM. RFC 8489,
// Section 14.12.
func AppendPasswordAlgorithm(b []byte, a PasswordAlgorithmParams) []byte {
	n := 4 + pad4(len(a.Params))
	b = appendAttrHeader(b, AttrPasswordAlgorithm, n)
	b = appendAlg(b, a)
	return finishAttr(b, n)
}

func appendAlg(b []byte, a PasswordAlgorithmParams) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(a.Algorithm))
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Params)))
	b = append(b, a.Params...)
	for i := len(a.Params); i%4 != 0; i++ {
		b = append(b, 0)
	}
	return b
}

// ParsePasswordAlgorithms appends the entries of a PASSWORD-ALGORITHMS
// value to dst.
func ParsePasswordAlgorithms(dst []PasswordAlgorithmParams, v []byte) ([]PasswordAlgorithmParams, error) {
	for len(v) > 0 {
		a, rest, err := parseAlg(v)
		if err != nil {
			return dst, err
		}
		dst = append(dst, a)
		v = rest
	}
	return dst, nil
}

// ParsePasswordAlgorithm decodes a PASSWORD-ALGORITHM value.
func ParsePasswordAlgorithm(v []byte) (PasswordAlgorithmParams, error) {
	a, rest, err := parseAlg(v)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: %d bytes after PASSWORD-ALGORITHM", ErrMalformed, len(rest))
	}
	return a, err
}

func parseAlg(v []byte) (PasswordAlgorithmParams, []byte, error) {
	if len(v) < 4 {
		return PasswordAlgorithmParams{}, nil, errLen("password algorithm", len(v))
	}
	n := int(binary.BigEndian.Uint16(v[2:4]))
	if 4+pad4(n) > len(v) {
		return PasswordAlgorithmParams{}, nil, fmt.Errorf("%w: password algorithm parameters of %d bytes", ErrTruncated, n)
	}
	a := PasswordAlgorithmParams{
		Algorithm: PasswordAlgorithm(binary.BigEndian.Uint16(v[0:2])),
		Params:    v[4 : 4+n : 4+n],
	}
	return a, v[4+pad4(n):], nil
}

// NonceCookie is the prefix of a nonce that carries security-feature bits.
// RFC 8489, Section 9.2.
const NonceCookie = "obMatJos2"

// Security features of RFC 8489, Section 18.1, as bits of the 24-bit
// feature set. Bit 0 is the least significant (rightmost) bit, as the
// verified erratum to Section 18.1 (Errata ID 6290) says. The Appendix B.1
// example agrees: its nonce cookie "obMatJos2AAAC" (feature set 0x000002)
// flags username anonymity in a request that carries USERHASH.
const (
	FeaturePasswordAlgorithms uint32 = 1 << 0
	FeatureUsernameAnonymity  uint32 = 1 << 1
)

// AppendNonceCookie appends the nonce cookie and the 24-bit security
// feature set, base64-encoded in 4 characters, to a nonce being built.
// RFC 8489, Section 9.2.
func AppendNonceCookie(b []byte, features uint32) []byte {
	b = append(b, NonceCookie...)
	var f [3]byte
	f[0], f[1], f[2] = byte(features>>16), byte(features>>8), byte(features)
	return base64.StdEncoding.AppendEncode(b, f[:])
}

// NonceFeatures returns the security feature set of a nonce that starts
// with the nonce cookie, and false for any other nonce.
func NonceFeatures(nonce string) (uint32, bool) {
	rest, ok := strings.CutPrefix(nonce, NonceCookie)
	if !ok || len(rest) < 4 {
		return 0, false
	}
	var f [3]byte
	if n, err := base64.StdEncoding.Decode(f[:], []byte(rest[:4])); err != nil || n != 3 {
		return 0, false
	}
	return uint32(f[0])<<16 | uint32(f[1])<<8 | uint32(f[2]), true
}
