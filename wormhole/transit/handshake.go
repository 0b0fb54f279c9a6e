package transit

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// ErrBadHandshake: the other end of a connection did not say what a transit
// peer with the same key says (another program, another key, or a sender
// that chose another connection).
var ErrBadHandshake = errors.New("transit: bad handshake")

// Role is the side of a transfer: the sender of the data or its receiver.
type Role int

// The two roles.
const (
	Sender Role = iota
	Receiver
)

func (r Role) String() string {
	if r == Sender {
		return "sender"
	}
	return "receiver"
}

// derive is HKDF-SHA256 of the transit key with no salt, 32 bytes.
func derive(key []byte, purpose string) []byte {
	out, err := hkdf.Key(sha256.New, key, nil, purpose, 32)
	if err != nil {
		panic("transit: hkdf: " + err.Error())
	}
	return out
}

// handshake returns what role sends first on every connection:
// "transit sender HEX ready\n\n" or "transit receiver HEX ready\n\n".
func handshake(key []byte, role Role) []byte {
	purpose := "transit_sender"
	if role == Receiver {
		purpose = "transit_receiver"
	}
	return fmt.Appendf(nil, "transit %s %s ready\n\n", role, hex.EncodeToString(derive(key, purpose)))
}

// relayHandshake returns the line that asks a transit relay to pair this
// connection: "please relay HEX for side SIDE\n".
func relayHandshake(key []byte, side string) []byte {
	return fmt.Appendf(nil, "please relay %s for side %s\n", hex.EncodeToString(derive(key, "transit_relay_token")), side)
}

// Fixed lines of the handshake.
var (
	lineGo        = []byte("go\n")
	lineNevermind = []byte("nevermind\n")
	lineRelayOK   = []byte("ok\n")
)

// expect reads exactly len(want) bytes and checks them, so nothing past the
// handshake is consumed.
func expect(r io.Reader, want []byte) error {
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("%w: reading %q: %v", ErrBadHandshake, want, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: got %q, want %q", ErrBadHandshake, got, want)
	}
	return nil
}

// expectGo reads the sender's decision on a receiver's connection: "go\n"
// or "nevermind\n".
func expectGo(r io.Reader) error {
	got := make([]byte, len(lineGo))
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("%w: waiting for go: %v", ErrBadHandshake, err)
	}
	if !bytes.Equal(got, lineGo) {
		return fmt.Errorf("%w: the sender chose another connection (%q)", ErrBadHandshake, got)
	}
	return nil
}
