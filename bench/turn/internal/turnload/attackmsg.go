package turnload

import (
	"net/netip"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// Requests the attack client (bench/turn/attack) sends besides the load
// tools' own: each the bytes a client would send, with the same
// credentials and FINGERPRINT.

// AppendCreatePermissions appends a CreatePermission request with one
// XOR-PEER-ADDRESS per peer: RFC 8656, Section 9.1 allows several.
func AppendCreatePermissions(b []byte, id stun.TransactionID, peers []netip.AddrPort, a *Auth) []byte {
	b = stun.AppendHeader(b, CreatePermissionRequest, id)
	for _, p := range peers {
		b = turn.AppendPeerAddress(b, p, id)
	}
	return appendAuth(b, a)
}

// AppendAllocateReserve appends an Allocate request with EVEN-PORT and the
// R bit, which reserves the next port too. RFC 8656, Section 7.1.
func AppendAllocateReserve(b []byte, id stun.TransactionID, a *Auth) []byte {
	b = stun.AppendHeader(b, AllocateRequest, id)
	b = (&turn.AllocateRequest{Reserve: true}).Append(b)
	return appendAuth(b, a)
}

// AppendAllocateTCP appends an Allocate request for a TCP relay. RFC 6062,
// Section 5.1.
func AppendAllocateTCP(b []byte, id stun.TransactionID, a *Auth) []byte {
	b = stun.AppendHeader(b, AllocateRequest, id)
	b = (&turn.AllocateRequest{Transport: turn.ProtoTCP}).Append(b)
	return appendAuth(b, a)
}

// ConnectRequest is the RFC 6062 Connect request type.
var ConnectRequest = stun.Type{Method: stun.MethodConnect, Class: stun.ClassRequest}

// AppendConnect appends a Connect request to peer. RFC 6062, Section 5.2.
func AppendConnect(b []byte, id stun.TransactionID, peer netip.AddrPort, a *Auth) []byte {
	b = stun.AppendHeader(b, ConnectRequest, id)
	b = turn.AppendPeerAddress(b, peer, id)
	return appendAuth(b, a)
}

// AppendBare appends a request of method with nothing but the 20-byte
// header: what a spoofed request costs its sender.
func AppendBare(b []byte, id stun.TransactionID, method stun.Method) []byte {
	return stun.AppendHeader(b, stun.Type{Method: method, Class: stun.ClassRequest}, id)
}

// AppendRefresh appends a Refresh request without LIFETIME: the default
// lifetime again. RFC 8656, Section 8.1.
func AppendRefresh(b []byte, id stun.TransactionID, a *Auth) []byte {
	b = stun.AppendHeader(b, RefreshRequest, id)
	b = turn.AppendRefresh(b, 0)
	return appendAuth(b, a)
}
