package turn

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// The TURN part of the requests and indications a client sends: the
// attributes that follow the 20-byte header, in the order icebreaker's
// clients write them. These are the one generator of TURN client messages:
// turnclient hands them to stunclient, which adds the header, the
// credentials and FINGERPRINT; the load and attack tools under bench/ add
// the header and long-term credentials themselves. The functions that take
// the transaction ID need it for XOR-PEER-ADDRESS (RFC 8489, Section 14.2).

// AllocateRequest is the TURN part of an Allocate request. RFC 8656,
// Section 7.1, and RFC 6062, Section 5.1. Its zero value asks for a UDP
// relay with the server's default family and lifetime.
type AllocateRequest struct {
	// Transport is REQUESTED-TRANSPORT: ProtoUDP, or ProtoTCP for an RFC
	// 6062 allocation. 0 means ProtoUDP.
	Transport uint8
	// EvenPort sends EVEN-PORT (Section 18.7); Reserve sets its R bit,
	// which asks the server to keep the next port for a later Allocate.
	EvenPort, Reserve bool
	// Family is REQUESTED-ADDRESS-FAMILY (Section 18.6), and
	// AdditionalFamily ADDITIONAL-ADDRESS-FAMILY (Section 18.11) for a
	// dual allocation; 0 sends neither.
	Family, AdditionalFamily Family
	// Lifetime is LIFETIME (Section 18.2); 0 sends none (the server's
	// default).
	Lifetime time.Duration
}

// Append appends the request's TURN attributes to b, which holds the
// header and whatever came before.
func (r *AllocateRequest) Append(b []byte) []byte {
	proto := r.Transport
	if proto == 0 {
		proto = ProtoUDP
	}
	b = AppendRequestedTransport(b, proto)
	if r.EvenPort || r.Reserve {
		b = AppendEvenPort(b, r.Reserve)
	}
	if r.Family != 0 {
		b = AppendRequestedAddressFamily(b, r.Family)
	}
	if r.AdditionalFamily != 0 {
		b = AppendAdditionalAddressFamily(b, r.AdditionalFamily)
	}
	if r.Lifetime > 0 {
		b = AppendLifetime(b, r.Lifetime)
	}
	return b
}

// AppendRefresh appends the TURN part of a Refresh request that keeps an
// allocation: LIFETIME when lifetime is positive, nothing otherwise (the
// server's default). RFC 8656, Section 8.
func AppendRefresh(b []byte, lifetime time.Duration) []byte {
	if lifetime > 0 {
		b = AppendLifetime(b, lifetime)
	}
	return b
}

// AppendDelete appends the TURN part of a Refresh request that deletes the
// allocation: LIFETIME 0. RFC 8656, Section 8.
func AppendDelete(b []byte) []byte {
	return AppendLifetime(b, 0)
}

// AppendPeerAddress appends XOR-PEER-ADDRESS (RFC 8656, Section 18.3) for
// peer, as the CreatePermission (Section 9.1, one per peer), ChannelBind
// and RFC 6062 Connect requests carry it. Unlike stun.AppendXORAddress, it
// keeps an IPv4-mapped IPv6 address in the IPv6 family, so that a client
// (a policy probe) can ask for exactly the address it was given.
func AppendPeerAddress(b []byte, peer netip.AddrPort, id stun.TransactionID) []byte {
	if !peer.Addr().Is4In6() {
		return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
	}
	// RFC 8489, Section 14.2: family IPv6, port XOR the cookie's top half,
	// address XOR cookie and transaction ID.
	var v [20]byte
	v[1] = stun.FamilyIPv6
	binary.BigEndian.PutUint16(v[2:4], peer.Port()^uint16(stun.MagicCookie>>16))
	a := peer.Addr().As16()
	var key [16]byte
	binary.BigEndian.PutUint32(key[:4], stun.MagicCookie)
	copy(key[4:], id[:])
	for i := range a {
		v[4+i] = a[i] ^ key[i]
	}
	return stun.AppendAttr(b, stun.AttrXORPeerAddress, v[:])
}

// AppendChannelBind appends the TURN part of a ChannelBind request:
// CHANNEL-NUMBER ch, then XOR-PEER-ADDRESS peer. RFC 8656, Section 11.1.
func AppendChannelBind(b []byte, ch uint16, peer netip.AddrPort, id stun.TransactionID) []byte {
	b = AppendChannelNumber(b, ch)
	return AppendPeerAddress(b, peer, id)
}

// SendIndication is the type of a Send indication.
var SendIndication = stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}

// AppendSendIndication appends a whole Send indication carrying data to
// peer: the header, XOR-PEER-ADDRESS and DATA, with no integrity
// (indications carry none). RFC 8656, Section 10.1.
func AppendSendIndication(b []byte, id stun.TransactionID, peer netip.AddrPort, data []byte) []byte {
	b = stun.AppendHeader(b, SendIndication, id)
	b = stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
	return stun.AppendAttr(b, stun.AttrData, data)
}
