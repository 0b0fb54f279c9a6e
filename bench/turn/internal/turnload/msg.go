package turnload

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// Creds are long-term credentials (RFC 8489, Section 9.2).
type Creds struct {
	Username, Password string
}

// ParseCreds parses the -user flag of the TURN tools, NAME:PASSWORD. The
// name must not be empty; the password may be, and may hold colons.
func ParseCreds(s string) (Creds, error) {
	name, pass, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return Creds{}, errors.New("-user NAME:PASSWORD is required")
	}
	return Creds{Username: name, Password: pass}, nil
}

// Keyring derives and caches the MD5 long-term key of one user for the
// realm a server names (RFC 8489, Section 9.2.2). The zero value is not
// usable: set Creds.
type Keyring struct {
	Creds Creds
	realm string
	key   []byte
}

// Key returns the key for realm, computing it when the realm changes.
func (k *Keyring) Key(realm []byte) ([]byte, error) {
	if k.key != nil && string(realm) == k.realm {
		return k.key, nil
	}
	key, err := stun.LongTermKey(stun.PasswordMD5, k.Creds.Username, string(realm), k.Creds.Password)
	if err != nil {
		return nil, fmt.Errorf("long-term key: %w", err)
	}
	k.realm, k.key = string(realm), key
	return key, nil
}

// Auth is what one client learned from its server's 401: the realm, the
// nonce and the key that sign its requests. The zero value means "not yet
// challenged": requests built with it carry no credentials.
type Auth struct {
	Username string
	Realm    []byte
	Nonce    []byte
	Key      []byte
}

// Ready reports whether the requests built with a carry credentials.
func (a *Auth) Ready() bool { return a.Key != nil }

// Learn updates a from an error reply and reports whether the request
// should be sent again: after a 401 that brought a realm and nonce (the
// first challenge, or a new realm), or after a 438 with a fresh nonce (RFC
// 8489, Sections 9.2.5). The caller bounds how often it retries.
func (a *Auth) Learn(r *Reply, kr *Keyring) bool {
	switch {
	case r.Code == stun.CodeUnauthorized && r.Realm != nil && r.Nonce != nil:
		key, err := kr.Key(r.Realm)
		if err != nil {
			return false
		}
		a.Username = kr.Creds.Username
		a.Realm = append(a.Realm[:0], r.Realm...)
		a.Nonce = append(a.Nonce[:0], r.Nonce...)
		a.Key = key
		return true
	case r.Code == stun.CodeStaleNonce && r.Nonce != nil && a.Ready():
		a.Nonce = append(a.Nonce[:0], r.Nonce...)
		return true
	}
	return false
}

// appendAuth ends a request: the credentials when a is ready, then
// FINGERPRINT. RFC 8489, Sections 9.2.3 and 14.7.
func appendAuth(b []byte, a *Auth) []byte {
	if a != nil && a.Ready() {
		b = stun.AppendAttrString(b, stun.AttrUsername, a.Username)
		b = stun.AppendAttr(b, stun.AttrRealm, a.Realm)
		b = stun.AppendAttr(b, stun.AttrNonce, a.Nonce)
		b = stun.AppendMessageIntegrity(b, a.Key)
	}
	return stun.AppendFingerprint(b)
}

// Request types.
var (
	AllocateRequest         = stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}
	RefreshRequest          = stun.Type{Method: stun.MethodRefresh, Class: stun.ClassRequest}
	CreatePermissionRequest = stun.Type{Method: stun.MethodCreatePermission, Class: stun.ClassRequest}
	ChannelBindRequest      = stun.Type{Method: stun.MethodChannelBind, Class: stun.ClassRequest}
)

// The requests below are package turn's request bodies, the ones
// turnclient (and so `icebreaker turn load`) sends, between the header
// and appendAuth.

// AppendAllocate appends an Allocate request for a UDP relay. RFC 8656,
// Section 7.1.
func AppendAllocate(b []byte, id stun.TransactionID, a *Auth) []byte {
	b = stun.AppendHeader(b, AllocateRequest, id)
	b = (&turn.AllocateRequest{}).Append(b)
	return appendAuth(b, a)
}

// AppendDelete appends a Refresh request with LIFETIME 0, which deletes the
// allocation. RFC 8656, Section 8.1.
func AppendDelete(b []byte, id stun.TransactionID, a *Auth) []byte {
	b = stun.AppendHeader(b, RefreshRequest, id)
	b = turn.AppendDelete(b)
	return appendAuth(b, a)
}

// AppendCreatePermission appends a CreatePermission request for peer's IP.
// RFC 8656, Section 9.1.
func AppendCreatePermission(b []byte, id stun.TransactionID, peer netip.AddrPort, a *Auth) []byte {
	return AppendCreatePermissions(b, id, []netip.AddrPort{peer}, a)
}

// AppendChannelBind appends a ChannelBind request binding ch to peer. RFC
// 8656, Section 11.1.
func AppendChannelBind(b []byte, id stun.TransactionID, ch uint16, peer netip.AddrPort, a *Auth) []byte {
	b = stun.AppendHeader(b, ChannelBindRequest, id)
	b = turn.AppendChannelBind(b, ch, peer, id)
	return appendAuth(b, a)
}

// Reply is a parsed response. Its slices refer to the parsed buffer.
type Reply struct {
	Success bool
	Code    int    // ERROR-CODE of an error response
	Reason  string // its reason phrase, only filled by ParseReply for errors
	Realm   []byte // REALM, if present
	Nonce   []byte // NONCE, if present
	// Relayed is XOR-RELAYED-ADDRESS of an Allocate success response.
	Relayed netip.AddrPort
}

// ErrNotResponse reports a datagram that is not a response to the request's
// method.
var ErrNotResponse = errors.New("not a response of the expected method")

// ParseReply reads m, a parsed message, as a response to a request of
// method. It does not check the transaction ID or MESSAGE-INTEGRITY.
func ParseReply(m *stun.Message, method stun.Method) (Reply, error) {
	var r Reply
	if m.Classic || m.Type.Method != method {
		return r, ErrNotResponse
	}
	switch m.Type.Class {
	case stun.ClassSuccess:
		r.Success = true
		if method == stun.MethodAllocate {
			a, err := m.XORAddress(stun.AttrXORRelayedAddress)
			if err != nil {
				return r, fmt.Errorf("Allocate success without XOR-RELAYED-ADDRESS: %w", err)
			}
			r.Relayed = netx.Unmap(a)
		}
		return r, nil
	case stun.ClassError:
		code, reason, err := m.ErrorCode()
		if err != nil {
			return r, fmt.Errorf("error response without a valid ERROR-CODE: %w", err)
		}
		r.Code, r.Reason = code, reason
		r.Realm, _ = m.Get(stun.AttrRealm)
		r.Nonce, _ = m.Get(stun.AttrNonce)
		return r, nil
	}
	return r, ErrNotResponse
}

// IsReplyTo reports whether b is a STUN response (success or error, with
// the magic cookie) with transaction ID id: the cheap check before Parse.
func IsReplyTo(b []byte, id *stun.TransactionID) bool {
	return stun.Is(b) && b[0]&0x01 == 0x01 && [12]byte(b[8:20]) == *id
}
