package ice

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/icebreaker-net/icebreaker/stun"
)

// This file builds and validates the STUN messages of connectivity checks,
// RFC 8445, Section 7, on the wire format of the stun package. It keeps no
// state: the Checker calls it.

// Errors of incoming check messages. Handle wraps them; callers count the
// dropped packets by cause with errors.Is.
var (
	// ErrDropped is wrapped by every error of a packet Handle discards
	// without changing any state.
	ErrDropped = errors.New("ice: packet dropped")
	// ErrUnauthenticated is wrapped when a request failed the short-term
	// credential checks (RFC 8489, Section 9.1.3) and was answered with
	// 400 or 401, or a response failed MESSAGE-INTEGRITY.
	ErrUnauthenticated = errors.New("ice: check not authenticated")
)

// PeerReflexivePriority returns the PRIORITY a check from local carries,
// RFC 8445, Section 7.1.1: the priority local would have as a
// peer-reflexive candidate, with the same local preference and component.
func PeerReflexivePriority(local *Candidate) uint32 {
	localPref := (local.Priority >> 8) & 0xFFFF
	return Priority(TypePrefPeerReflexive, localPref, local.Component)
}

// checkRequest holds what a connectivity check carries. RFC 8445, Section
// 7.1.
type checkRequest struct {
	id           stun.TransactionID
	username     string // "remoteUfrag:localUfrag", Section 7.2.2
	priority     uint32
	controlling  bool
	tieBreaker   uint64
	useCandidate bool
	key          []byte // the remote password's short-term key
}

// appendRequest appends the Binding request of a connectivity check to b.
// RFC 8445, Sections 7.1.1 to 7.1.3, and 7.2.2 for the credentials.
func appendRequest(b []byte, r *checkRequest) []byte {
	b = stun.AppendHeader(b, stun.BindingRequest, r.id)
	b = stun.AppendAttrString(b, stun.AttrUsername, r.username)
	b = stun.AppendUint32Attr(b, stun.AttrPriority, r.priority)
	if r.controlling {
		b = stun.AppendUint64Attr(b, stun.AttrICEControlling, r.tieBreaker)
	} else {
		b = stun.AppendUint64Attr(b, stun.AttrICEControlled, r.tieBreaker)
	}
	if r.useCandidate {
		b = stun.AppendAttr(b, stun.AttrUseCandidate, nil)
	}
	b = stun.AppendMessageIntegrity(b, r.key)
	return stun.AppendFingerprint(b)
}

// appendSuccess appends the success response to a check, RFC 8445,
// Section 7.3.1.2: XOR-MAPPED-ADDRESS is the source of the request, signed
// with the local password.
func appendSuccess(b []byte, id stun.TransactionID, from netip.AddrPort, key []byte) []byte {
	b = stun.AppendHeader(b, stun.BindingSuccess, id)
	b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, id)
	b = stun.AppendMessageIntegrity(b, key)
	return stun.AppendFingerprint(b)
}

// appendError appends an error response. A nil key leaves out
// MESSAGE-INTEGRITY, as RFC 8489, Section 9.1.3 asks for 400 and 401
// answers to requests that failed authentication; unknown lists the
// attributes of a 420.
func appendError(b []byte, id stun.TransactionID, code int, key []byte, unknown []stun.AttrType) []byte {
	b = stun.AppendHeader(b, stun.BindingError, id)
	b = stun.AppendErrorCode(b, code, "")
	if len(unknown) > 0 {
		b = stun.AppendUnknownAttributes(b, unknown)
	}
	if key != nil {
		b = stun.AppendMessageIntegrity(b, key)
	}
	return stun.AppendFingerprint(b)
}

// knownCheckAttr reports the comprehension-required attributes a check may
// carry.
func knownCheckAttr(t stun.AttrType) bool {
	switch t {
	case stun.AttrUsername, stun.AttrMessageIntegrity, stun.AttrMessageIntegritySHA256,
		stun.AttrPriority, stun.AttrUseCandidate, stun.AttrXORMappedAddress, stun.AttrErrorCode,
		stun.AttrUnknownAttributes:
		return true
	}
	return false
}

// incomingRequest is a connectivity check that passed authentication.
type incomingRequest struct {
	priority     uint32
	useCandidate bool
	// role is roleNone, roleControlling or roleControlled: which of
	// ICE-CONTROLLING and ICE-CONTROLLED it carried.
	role       int
	tieBreaker uint64
}

const (
	roleNone = iota
	roleControlling
	roleControlled
)

// authError is a request the receiver answers with an error (code) instead
// of processing it.
type authError struct {
	code    int
	unknown []stun.AttrType
	reason  string
}

func (e *authError) Error() string {
	return fmt.Sprintf("ice: check answered with %d: %s", e.code, e.reason)
}

func (e *authError) Unwrap() error {
	if e.code == stun.CodeUnauthorized || e.code == stun.CodeBadRequest {
		return ErrUnauthenticated
	}
	return nil
}

// parseRequest validates a Binding request addressed to this agent, RFC
// 8445, Section 7.3, and RFC 8489, Sections 6.3.1 and 9.1.3: USERNAME must
// be "localUfrag:remoteUfrag" (the remote part is not checked while
// remoteUfrag is empty), MESSAGE-INTEGRITY must verify with the local
// password, PRIORITY must be present. It returns an *authError for a
// request to answer with an error.
func parseRequest(m *stun.Message, localUfrag, remoteUfrag string, key []byte) (incomingRequest, error) {
	var r incomingRequest
	if unknown := m.UnknownRequired(nil, knownCheckAttr); len(unknown) > 0 {
		return r, &authError{code: stun.CodeUnknownAttribute, unknown: unknown, reason: "unknown attributes"}
	}
	user, err := m.Username()
	if err != nil || !m.Has(stun.AttrMessageIntegrity) {
		return r, &authError{code: stun.CodeBadRequest, reason: "USERNAME or MESSAGE-INTEGRITY missing"}
	}
	lf, rf, ok := strings.Cut(user, ":")
	if !ok || lf != localUfrag || (remoteUfrag != "" && rf != remoteUfrag) {
		return r, &authError{code: stun.CodeUnauthorized, reason: "unknown USERNAME"}
	}
	if err := m.CheckIntegrity(key); err != nil {
		return r, &authError{code: stun.CodeUnauthorized, reason: "MESSAGE-INTEGRITY mismatch"}
	}
	v, ok := m.Get(stun.AttrPriority)
	if !ok {
		return r, &authError{code: stun.CodeBadRequest, reason: "PRIORITY missing"}
	}
	if r.priority, err = stun.Uint32(v); err != nil || r.priority == 0 {
		return r, &authError{code: stun.CodeBadRequest, reason: "bad PRIORITY"}
	}
	r.useCandidate = m.Has(stun.AttrUseCandidate)
	if v, ok := m.Get(stun.AttrICEControlling); ok {
		r.role = roleControlling
		r.tieBreaker, err = stun.Uint64(v)
	} else if v, ok := m.Get(stun.AttrICEControlled); ok {
		r.role = roleControlled
		r.tieBreaker, err = stun.Uint64(v)
	}
	if err != nil {
		return r, &authError{code: stun.CodeBadRequest, reason: "bad ICE-CONTROLLING/ICE-CONTROLLED"}
	}
	return r, nil
}
