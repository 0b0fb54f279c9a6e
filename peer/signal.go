package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// AppVersionKey is the key of the wormhole app_versions entry that says a
// side can connect with ICE and QUIC (see the package doc).
const AppVersionKey = "icebreaker-ice-v1"

// ALPN is the application protocol of the QUIC connection (RFC 9001,
// Section 8.1).
const ALPN = "icebreaker-peer/1"

// maxSignal caps a signalling message.
const maxSignal = 8 << 10

// AppVersions returns the app_versions object to announce (pass it as
// wormhole.Config.AppVersions). The value is an empty object, room for
// later parameters.
func AppVersions() map[string]any {
	return map[string]any{AppVersionKey: map[string]any{}}
}

// Supported reports whether the peer's app_versions (from
// wormhole.Wormhole.PeerAppVersions) says it can connect with ICE.
func Supported(peerVersions []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(peerVersions, &m) != nil {
		return false
	}
	_, ok := m[AppVersionKey]
	return ok
}

// hello is a side's ICE credentials and certificate fingerprint.
type hello struct {
	Ufrag       string `json:"ufrag"`
	Pwd         string `json:"pwd"`
	Fingerprint string `json:"fingerprint"`
	ALPN        string `json:"alpn"`
}

// signal is one signalling message; exactly one field is set.
type signal struct {
	Hello     *hello  `json:"ice-hello,omitempty"`
	Candidate *string `json:"ice-candidate,omitempty"`
	Done      bool    `json:"ice-candidates-done,omitempty"`
	Error     *string `json:"ice-error,omitempty"`
}

// errNotSignal is wrapped by parseSignal for a message that is JSON but
// none of ours.
var errNotSignal = errors.New("peer: not an ICE signalling message")

// IsHello reports whether msg, a message received from the mailbox, is a
// peer's ICE hello: the first message of a peer that connects with ICE.
func IsHello(msg []byte) bool {
	s, err := parseSignal(msg)
	return err == nil && s.Hello != nil
}

// parseSignal parses and checks one signalling message.
func parseSignal(b []byte) (signal, error) {
	var s signal
	if len(b) > maxSignal {
		return s, fmt.Errorf("peer: signalling message of %d bytes (max %d)", len(b), maxSignal)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("peer: signalling message: %w", err)
	}
	n := 0
	for _, set := range []bool{s.Hello != nil, s.Candidate != nil, s.Done, s.Error != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return s, errNotSignal
	case n > 1:
		return s, errors.New("peer: signalling message with more than one field")
	case s.Hello != nil:
		h := s.Hello
		if h.Ufrag == "" || h.Pwd == "" || !strings.HasPrefix(h.Fingerprint, "sha-256 ") {
			return s, errors.New("peer: hello without ufrag, pwd or sha-256 fingerprint")
		}
		if _, err := parseFingerprint(h.Fingerprint); err != nil {
			return s, err
		}
	}
	return s, nil
}
