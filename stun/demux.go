package stun

// Kind is what the first byte of a packet says it is, by the rule of RFC
// 7983, Section 7, as updated by RFC 9443 (which gives TURN ChannelData
// 64-79 and QUIC the rest of 64-127; QUIC is reported as KindUnknown).
type Kind uint8

// Packet kinds.
const (
	KindUnknown     Kind = iota
	KindSTUN             // 0-3
	KindZRTP             // 16-19
	KindDTLS             // 20-63
	KindChannelData      // 64-79: TURN ChannelData, RFC 8656 Section 12
	KindRTP              // 128-191: RTP and RTCP
)

func (k Kind) String() string {
	switch k {
	case KindSTUN:
		return "STUN"
	case KindZRTP:
		return "ZRTP"
	case KindDTLS:
		return "DTLS"
	case KindChannelData:
		return "ChannelData"
	case KindRTP:
		return "RTP/RTCP"
	}
	return "unknown"
}

// Classify returns the kind of a packet by its first byte, so one socket
// can carry STUN, TURN ChannelData and application data. It does not
// validate the packet; run Is or Parse on what it calls STUN.
func Classify(b []byte) Kind {
	if len(b) == 0 {
		return KindUnknown
	}
	switch c := b[0]; {
	case c <= 3:
		return KindSTUN
	case c >= 16 && c <= 19:
		return KindZRTP
	case c >= 20 && c <= 63:
		return KindDTLS
	case c >= 64 && c <= 79:
		return KindChannelData
	case c >= 128 && c <= 191:
		return KindRTP
	}
	return KindUnknown
}
