// Package spake2 implements SPAKE2 in the symmetric mode of python-spake2
// (the PAKE that magic-wormhole uses) over the prime-order subgroup of
// edwards25519, so that its messages and keys are byte for byte those of
// python-spake2 0.8.
//
// SPAKE2 is described by Abdalla and Pointcheval ("Simple Password-Based
// Encrypted Key Exchange Protocols", CT-RSA 2005) and in RFC 9382; the
// symmetric variant, the blinding element derivation and the transcript
// hash follow python-spake2 (https://github.com/warner/python-spake2),
// which predates RFC 9382 and differs from it:
//
//   - the blinding element S is derived from the seed "symmetric": the
//     HKDF-SHA256 (RFC 5869) expansion of the seed with the info
//     "SPAKE2 arbitrary element" to 48 bytes, read big-endian and reduced
//     modulo 2^255-19, is a y coordinate; the point with that y and an
//     even x (trying y+1, y+2, ... until one exists) times the cofactor 8;
//   - the password scalar is the HKDF-SHA256 expansion of the password
//     with the info "SPAKE2 pw" to 48 bytes, big-endian, modulo L;
//   - the secret scalar is 64 random bytes, big-endian, modulo L;
//   - a message is the byte 'S' followed by the encoding of x·B + pw·S;
//   - K = x·(Y - pw·S), and the key is SHA-256 over SHA-256(password),
//     SHA-256(identity), the two messages (without the side byte) in
//     bytewise order, and the encoding of K.
//
// Nothing here touches the network.
package spake2

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sync"

	"filippo.io/edwards25519"
)

// MessageSize is the length of a SPAKE2 message: the side byte and a point.
const MessageSize = 1 + 32

// EntropySize is how many random bytes Start consumes.
const EntropySize = 64

// sideSymmetric is the side byte of python-spake2's symmetric mode.
const sideSymmetric = 'S'

// Errors of Finish. They are wrapped with details; match with errors.Is.
var (
	// ErrBadMessage: the peer's message is not a symmetric-mode message
	// holding an element of the prime-order group (wrong length or side
	// byte, not a point, the identity, or outside the subgroup).
	ErrBadMessage = errors.New("spake2: bad message")
	// ErrReflection: the peer's message is our own message sent back.
	ErrReflection = errors.New("spake2: our own message was reflected back")
)

// State is one side of a symmetric SPAKE2 exchange. Create it with Start,
// send Message to the peer, and call Finish with the peer's message. It is
// not safe for concurrent use; its zero value is not usable.
type State struct {
	password []byte
	identity []byte
	pw       *edwards25519.Scalar
	x        *edwards25519.Scalar
	msg      [MessageSize]byte
	finished bool
}

// Start begins an exchange for password and identity (magic-wormhole uses
// its application id), reading EntropySize bytes of randomness from rand
// (crypto/rand.Reader in production; fixed bytes in tests, to replay
// python-spake2's vectors).
func Start(password, identity []byte, rand io.Reader) (*State, error) {
	var entropy [EntropySize]byte
	if _, err := io.ReadFull(rand, entropy[:]); err != nil {
		return nil, fmt.Errorf("spake2: reading randomness: %w", err)
	}
	s := &State{
		password: slices.Clone(password),
		identity: slices.Clone(identity),
		pw:       passwordScalar(password),
		x:        bigEndianScalar(entropy[:]),
	}
	xb := new(edwards25519.Point).ScalarBaseMult(s.x)
	pwS := new(edwards25519.Point).ScalarMult(s.pw, blinding())
	s.msg[0] = sideSymmetric
	copy(s.msg[1:], new(edwards25519.Point).Add(xb, pwS).Bytes())
	return s, nil
}

// Message returns the message to send to the peer: 'S' and a point. The
// caller owns the returned slice.
func (s *State) Message() []byte { return slices.Clone(s.msg[:]) }

// Finish takes the peer's message and returns the shared 32-byte key. Both
// sides get the same key only if they used the same password and identity;
// SPAKE2 itself cannot tell, so the caller confirms the key (magic-wormhole
// does it by decrypting the first message sealed with it). Finish may be
// called once; a second call returns an error.
func (s *State) Finish(peer []byte) ([]byte, error) {
	if s.finished {
		return nil, errors.New("spake2: Finish called twice")
	}
	s.finished = true
	y, err := ParseMessage(peer)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(y.Bytes(), s.msg[1:]) {
		return nil, ErrReflection
	}
	// K = x·(Y - pw·S)
	pwS := new(edwards25519.Point).ScalarMult(s.pw, blinding())
	k := new(edwards25519.Point).Subtract(y, pwS)
	k.ScalarMult(s.x, k)

	m1, m2 := peer[1:], s.msg[1:]
	if bytes.Compare(m1, m2) > 0 {
		m1, m2 = m2, m1
	}
	pwHash := sha256.Sum256(s.password)
	idHash := sha256.Sum256(s.identity)
	h := sha256.New()
	h.Write(pwHash[:])
	h.Write(idHash[:])
	h.Write(m1)
	h.Write(m2)
	h.Write(k.Bytes())
	return h.Sum(nil), nil
}

// ParseMessage decodes a symmetric-mode message and checks that it holds an
// element of the prime-order subgroup other than the identity. Errors wrap
// ErrBadMessage.
func ParseMessage(b []byte) (*edwards25519.Point, error) {
	if len(b) != MessageSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadMessage, len(b), MessageSize)
	}
	if b[0] != sideSymmetric {
		return nil, fmt.Errorf("%w: side byte %q, want 'S' (symmetric)", ErrBadMessage, b[0])
	}
	p, err := new(edwards25519.Point).SetBytes(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: not a point: %v", ErrBadMessage, err)
	}
	if p.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("%w: the identity element", ErrBadMessage)
	}
	// L·P must be the identity. L is not a canonical scalar, so check
	// (L-1)·P == -P instead.
	lp := new(edwards25519.Point).ScalarMult(orderMinusOne(), p)
	if lp.Equal(new(edwards25519.Point).Negate(p)) != 1 {
		return nil, fmt.Errorf("%w: not in the prime-order subgroup", ErrBadMessage)
	}
	return p, nil
}

// expand is HKDF-SHA256 with an empty salt, as python-spake2 uses it.
func expand(secret []byte, info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, secret, nil, info, n)
	if err != nil {
		panic("spake2: hkdf: " + err.Error()) // only for n > 255*32
	}
	return out
}

// passwordScalar maps a password to a scalar as python-spake2 does.
func passwordScalar(password []byte) *edwards25519.Scalar {
	return bigEndianScalar(expand(password, "SPAKE2 pw", 32+16))
}

// bigEndianScalar reduces b (at most 64 bytes, read big-endian) modulo L.
// SetUniformBytes reads 64 bytes little-endian, so reverse and zero-pad.
func bigEndianScalar(b []byte) *edwards25519.Scalar {
	var le [64]byte
	for i, c := range b {
		le[len(b)-1-i] = c
	}
	s, err := edwards25519.NewScalar().SetUniformBytes(le[:])
	if err != nil {
		panic("spake2: " + err.Error()) // le is always 64 bytes
	}
	return s
}

// orderMinusOne returns L-1 as a scalar.
var orderMinusOne = sync.OnceValue(func() *edwards25519.Scalar {
	// L-1 = 2^252 + 27742317777372353535851937790883648492, little-endian.
	b := [32]byte{
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
		0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic("spake2: L-1: " + err.Error())
	}
	return s
})

// blinding returns the symmetric blinding element S.
var blinding = sync.OnceValue(func() *edwards25519.Point {
	return arbitraryElement([]byte("symmetric"))
})

// arbitraryElement derives a prime-order element with unknown discrete log
// from seed, as python-spake2's arbitrary_element does.
func arbitraryElement(seed []byte) *edwards25519.Point {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	y := new(big.Int).SetBytes(expand(seed, "SPAKE2 arbitrary element", 32+16))
	y.Mod(y, p)
	one := big.NewInt(1)
	for ; ; y.Add(y, one).Mod(y, p) {
		var enc [32]byte
		y.FillBytes(enc[:])
		slices.Reverse(enc[:]) // little-endian y, sign bit 0: even x
		pt, err := new(edwards25519.Point).SetBytes(enc[:])
		if err != nil {
			continue // no x for this y
		}
		pt.MultByCofactor(pt)
		if pt.Equal(edwards25519.NewIdentityPoint()) == 1 {
			continue
		}
		return pt
	}
}
