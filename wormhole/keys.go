package wormhole

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"

	"golang.org/x/crypto/nacl/secretbox"
)

// KeySize is the size of every key derived from the session key.
const KeySize = 32

// nonceSize is NaCl secretbox's nonce size.
const nonceSize = 24

// Purposes of DeriveKey that magic-wormhole fixes.
const (
	purposeVerifier = "wormhole:verifier"
	// purposeTransit is the transit key's purpose: fixed, whatever the
	// application id.
	purposeTransit = "lothar.com/wormhole/text-or-file-xfer/transit-key"
)

// DeriveKey derives a KeySize-byte key for purpose from key with
// HKDF-SHA256 (RFC 5869) and no salt, as magic-wormhole's derive_key does.
func DeriveKey(key []byte, purpose string) []byte {
	out, err := hkdf.Key(sha256.New, key, nil, purpose, KeySize)
	if err != nil {
		panic("wormhole: hkdf: " + err.Error()) // only for huge lengths
	}
	return out
}

// phaseKey is the key that side uses to seal phase.
func phaseKey(key []byte, side, phase string) []byte {
	hs := sha256.Sum256([]byte(side))
	hp := sha256.Sum256([]byte(phase))
	purpose := make([]byte, 0, 15+64)
	purpose = append(purpose, "wormhole:phase:"...)
	purpose = append(purpose, hs[:]...)
	purpose = append(purpose, hp[:]...)
	return DeriveKey(key, string(purpose))
}

// errDecrypt: a box that does not open with the key.
var errDecrypt = errors.New("wormhole: message does not decrypt")

// seal returns a random nonce followed by plaintext sealed under key.
func seal(key, plaintext []byte) []byte {
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("wormhole: crypto/rand: " + err.Error())
	}
	var k [KeySize]byte
	copy(k[:], key)
	return secretbox.Seal(nonce[:], plaintext, &nonce, &k)
}

// open opens a nonce followed by a box sealed under key.
func open(key, data []byte) ([]byte, error) {
	if len(data) < nonceSize+secretbox.Overhead {
		return nil, errDecrypt
	}
	var nonce [nonceSize]byte
	copy(nonce[:], data)
	var k [KeySize]byte
	copy(k[:], key)
	out, ok := secretbox.Open(nil, data[nonceSize:], &nonce, &k)
	if !ok {
		return nil, errDecrypt
	}
	return out, nil
}
