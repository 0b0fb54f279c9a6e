package stun

import "fmt"

// AttrType is a STUN attribute type. Types below 0x8000 are
// comprehension-required: an agent that does not understand one must reject
// the message. RFC 8489, Section 14.
type AttrType uint16

// Attributes of RFC 8489 (Section 18.3), RFC 5780 (Section 7), RFC 8656
// (Section 18), RFC 6062 (Section 6.2), RFC 8445 (Section 16.1) and RFC 7635.
const (
	AttrMappedAddress          AttrType = 0x0001
	AttrChangeRequest          AttrType = 0x0003 // RFC 5780
	AttrUsername               AttrType = 0x0006
	AttrMessageIntegrity       AttrType = 0x0008
	AttrErrorCode              AttrType = 0x0009
	AttrUnknownAttributes      AttrType = 0x000a
	AttrChannelNumber          AttrType = 0x000c // RFC 8656
	AttrLifetime               AttrType = 0x000d // RFC 8656
	AttrXORPeerAddress         AttrType = 0x0012 // RFC 8656
	AttrData                   AttrType = 0x0013 // RFC 8656
	AttrRealm                  AttrType = 0x0014
	AttrNonce                  AttrType = 0x0015
	AttrXORRelayedAddress      AttrType = 0x0016 // RFC 8656
	AttrRequestedAddressFamily AttrType = 0x0017 // RFC 8656
	AttrEvenPort               AttrType = 0x0018 // RFC 8656
	AttrRequestedTransport     AttrType = 0x0019 // RFC 8656
	AttrDontFragment           AttrType = 0x001a // RFC 8656
	AttrMessageIntegritySHA256 AttrType = 0x001c
	AttrPasswordAlgorithm      AttrType = 0x001d
	AttrUserhash               AttrType = 0x001e
	AttrXORMappedAddress       AttrType = 0x0020
	AttrReservationToken       AttrType = 0x0022 // RFC 8656
	AttrPriority               AttrType = 0x0024 // RFC 8445
	AttrUseCandidate           AttrType = 0x0025 // RFC 8445
	AttrPadding                AttrType = 0x0026 // RFC 5780
	AttrResponsePort           AttrType = 0x0027 // RFC 5780
	AttrConnectionID           AttrType = 0x002a // RFC 6062

	AttrAdditionalAddressFamily    AttrType = 0x8000 // RFC 8656
	AttrAddressErrorCode           AttrType = 0x8001 // RFC 8656
	AttrPasswordAlgorithms         AttrType = 0x8002
	AttrAlternateDomain            AttrType = 0x8003
	AttrIcmp                       AttrType = 0x8004 // RFC 8656
	AttrSoftware                   AttrType = 0x8022
	AttrAlternateServer            AttrType = 0x8023
	AttrTransactionTransmitCounter AttrType = 0x8025 // RFC 7982
	AttrCacheTimeout               AttrType = 0x8027 // RFC 5780
	AttrFingerprint                AttrType = 0x8028
	AttrICEControlled              AttrType = 0x8029 // RFC 8445
	AttrICEControlling             AttrType = 0x802a // RFC 8445
	AttrResponseOrigin             AttrType = 0x802b // RFC 5780
	AttrOtherAddress               AttrType = 0x802c // RFC 5780
)

// ComprehensionRequired reports whether t is in the comprehension-required
// range 0x0000-0x7FFF. RFC 8489, Section 14.
func (t AttrType) ComprehensionRequired() bool { return t < 0x8000 }

var attrNames = map[AttrType]string{
	AttrMappedAddress:              "MAPPED-ADDRESS",
	AttrChangeRequest:              "CHANGE-REQUEST",
	AttrUsername:                   "USERNAME",
	AttrMessageIntegrity:           "MESSAGE-INTEGRITY",
	AttrErrorCode:                  "ERROR-CODE",
	AttrUnknownAttributes:          "UNKNOWN-ATTRIBUTES",
	AttrChannelNumber:              "CHANNEL-NUMBER",
	AttrLifetime:                   "LIFETIME",
	AttrXORPeerAddress:             "XOR-PEER-ADDRESS",
	AttrData:                       "DATA",
	AttrRealm:                      "REALM",
	AttrNonce:                      "NONCE",
	AttrXORRelayedAddress:          "XOR-RELAYED-ADDRESS",
	AttrRequestedAddressFamily:     "REQUESTED-ADDRESS-FAMILY",
	AttrEvenPort:                   "EVEN-PORT",
	AttrRequestedTransport:         "REQUESTED-TRANSPORT",
	AttrDontFragment:               "DONT-FRAGMENT",
	AttrMessageIntegritySHA256:     "MESSAGE-INTEGRITY-SHA256",
	AttrPasswordAlgorithm:          "PASSWORD-ALGORITHM",
	AttrUserhash:                   "USERHASH",
	AttrXORMappedAddress:           "XOR-MAPPED-ADDRESS",
	AttrReservationToken:           "RESERVATION-TOKEN",
	AttrPriority:                   "PRIORITY",
	AttrUseCandidate:               "USE-CANDIDATE",
	AttrPadding:                    "PADDING",
	AttrResponsePort:               "RESPONSE-PORT",
	AttrConnectionID:               "CONNECTION-ID",
	AttrAdditionalAddressFamily:    "ADDITIONAL-ADDRESS-FAMILY",
	AttrAddressErrorCode:           "ADDRESS-ERROR-CODE",
	AttrPasswordAlgorithms:         "PASSWORD-ALGORITHMS",
	AttrAlternateDomain:            "ALTERNATE-DOMAIN",
	AttrIcmp:                       "ICMP",
	AttrSoftware:                   "SOFTWARE",
	AttrAlternateServer:            "ALTERNATE-SERVER",
	AttrTransactionTransmitCounter: "TRANSACTION_TRANSMIT_COUNTER",
	AttrCacheTimeout:               "CACHE-TIMEOUT",
	AttrFingerprint:                "FINGERPRINT",
	AttrICEControlled:              "ICE-CONTROLLED",
	AttrICEControlling:             "ICE-CONTROLLING",
	AttrResponseOrigin:             "RESPONSE-ORIGIN",
	AttrOtherAddress:               "OTHER-ADDRESS",
}

func (t AttrType) String() string {
	if s, ok := attrNames[t]; ok {
		return s
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}

// UnknownRequired appends to dst the comprehension-required attributes of m
// for which known returns false, without duplicates, and returns the
// result. A server answers a request with such attributes with 420 and an
// UNKNOWN-ATTRIBUTES attribute listing them; a client discards such a
// response. RFC 8489, Sections 6.3.1 and 6.3.3.
func (m *Message) UnknownRequired(dst []AttrType, known func(AttrType) bool) []AttrType {
outer:
	for _, a := range m.Attrs {
		if !a.Type.ComprehensionRequired() || known(a.Type) {
			continue
		}
		for _, d := range dst {
			if d == a.Type {
				continue outer
			}
		}
		dst = append(dst, a.Type)
	}
	return dst
}
