package ice

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Transport is the transport protocol of a candidate. RFC 8839, Section 5.1,
// and RFC 6544, Section 4.5.
type Transport uint8

const (
	TransportUDP Transport = iota // "UDP"
	TransportTCP                  // "TCP" (RFC 6544)
)

func (t Transport) String() string {
	switch t {
	case TransportUDP:
		return "UDP"
	case TransportTCP:
		return "TCP"
	}
	return "Transport(" + strconv.Itoa(int(t)) + ")"
}

// TCPType is the "tcptype" of a TCP candidate. RFC 6544, Section 4.5.
type TCPType uint8

const (
	TCPTypeNone    TCPType = iota // not a TCP candidate, or tcptype absent
	TCPTypeActive                 // "active": opens connections, never accepts
	TCPTypePassive                // "passive": accepts connections
	TCPTypeSO                     // "so": simultaneous open
)

func (t TCPType) String() string {
	switch t {
	case TCPTypeNone:
		return ""
	case TCPTypeActive:
		return "active"
	case TCPTypePassive:
		return "passive"
	case TCPTypeSO:
		return "so"
	}
	return "TCPType(" + strconv.Itoa(int(t)) + ")"
}

// CandidateType is the type of a candidate. RFC 8445, Section 5.1.1.
type CandidateType uint8

const (
	TypeHost            CandidateType = iota // "host"
	TypeServerReflexive                      // "srflx"
	TypePeerReflexive                        // "prflx"
	TypeRelay                                // "relay"
)

func (t CandidateType) String() string {
	switch t {
	case TypeHost:
		return "host"
	case TypeServerReflexive:
		return "srflx"
	case TypePeerReflexive:
		return "prflx"
	case TypeRelay:
		return "relay"
	}
	return "CandidateType(" + strconv.Itoa(int(t)) + ")"
}

// Ext is one candidate extension attribute (RFC 8839, Section 5.1,
// cand-extension), such as "generation 0" or "network-cost 10".
type Ext struct {
	Key, Value string
}

// Candidate is one ICE candidate. It is a plain value: the zero value is a
// UDP host candidate with no address, and a Candidate is safe for concurrent
// use only as far as its Extensions slice is not modified concurrently.
//
// The connection address is an IP address in Addr in the common case. RFC 8839,
// Section 5.1, also allows a fully qualified domain name, which browsers use
// to hide host addresses behind mDNS names ("<uuid>.local"). Such a candidate
// has Host set to the name and Addr set to netip.AddrPortFrom(netip.Addr{},
// port): Addr.Addr() is invalid and Addr.Port() is the port. The agent must
// resolve Host before it can pair the candidate. The related address works the
// same way with RelatedHost and Related.
type Candidate struct {
	Foundation string // 1 to 32 ice-chars; RFC 8445, Section 5.1.1.3
	Component  uint16 // 1 to 256; 1 is RTP (or the only component)
	Transport  Transport
	TCPType    TCPType // TCP candidates only; RFC 6544
	Priority   uint32  // RFC 8445, Section 5.1.2
	Addr       netip.AddrPort
	Host       string // FQDN connection address, when it is not an IP address
	Type       CandidateType

	// Related is the related address (raddr/rport): the base of a server- or
	// peer-reflexive candidate, the mapped address of a relayed one. It is
	// the zero AddrPort when absent.
	Related     netip.AddrPort
	RelatedHost string // FQDN related address, like Host

	// Extensions holds the remaining attributes in order, nil when none.
	// raddr, rport and tcptype are fields, never extensions.
	Extensions []Ext

	// Base is the base of a local candidate (RFC 8445, Section 5.1.1): the
	// address checks are sent from. It is not carried on the wire, so it is
	// the zero AddrPort in parsed candidates; see BaseAddr.
	Base netip.AddrPort

	// Origin says how a local candidate was found (a port mapping goes
	// out as "srflx" too; a STUN-found address that a port mapping also
	// gave is OriginPortMap). It is not carried on the wire.
	Origin Origin
}

// BaseAddr returns the candidate's base: Base when set, else the best guess
// from the candidate itself (Addr for host and relayed candidates, Related for
// reflexive ones, whose related address is the base per RFC 8445, Section
// 5.1.1.2 and RFC 8839, Section 5.1).
func (c *Candidate) BaseAddr() netip.AddrPort {
	if c.Base.IsValid() {
		return c.Base
	}
	switch c.Type {
	case TypeServerReflexive, TypePeerReflexive:
		if c.Related.IsValid() {
			return c.Related
		}
	}
	return c.Addr
}

// Equal reports whether c and d are the same candidate, field by field.
func (c *Candidate) Equal(d *Candidate) bool {
	if c.Foundation != d.Foundation || c.Component != d.Component ||
		c.Transport != d.Transport || c.TCPType != d.TCPType ||
		c.Priority != d.Priority || c.Addr != d.Addr || c.Host != d.Host ||
		c.Type != d.Type || c.Related != d.Related ||
		c.RelatedHost != d.RelatedHost || c.Base != d.Base ||
		len(c.Extensions) != len(d.Extensions) {
		return false
	}
	for i := range c.Extensions {
		if c.Extensions[i] != d.Extensions[i] {
			return false
		}
	}
	return true
}

// Extension returns the value of the first extension named key.
func (c *Candidate) Extension(key string) (string, bool) {
	for _, e := range c.Extensions {
		if e.Key == key {
			return e.Value, true
		}
	}
	return "", false
}

// String returns the candidate in the attribute form used by trickle and
// by browsers' RTCIceCandidate.candidate: "candidate:<foundation> ...".
// Prefix "a=" for an SDP line.
func (c Candidate) String() string {
	return string(c.AppendTo(make([]byte, 0, 128)))
}

// AppendTo appends the candidate attribute, "candidate:" included (RFC 8839,
// Section 5.1), to b and returns the extended buffer. The transport is
// written as "UDP" or "TCP", raddr/rport follow the type, then tcptype, then
// the extensions in order. A candidate built by hand with invalid fields (an
// empty foundation, say) is written as is and will not parse back.
func (c *Candidate) AppendTo(b []byte) []byte {
	b = append(b, "candidate:"...)
	b = append(b, c.Foundation...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(c.Component), 10)
	b = append(b, ' ')
	b = append(b, c.Transport.String()...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(c.Priority), 10)
	b = append(b, ' ')
	b = appendConnAddr(b, c.Addr, c.Host)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(c.Addr.Port()), 10)
	b = append(b, " typ "...)
	b = append(b, c.Type.String()...)
	if c.Related.Addr().IsValid() || c.RelatedHost != "" {
		b = append(b, " raddr "...)
		b = appendConnAddr(b, c.Related, c.RelatedHost)
		b = append(b, " rport "...)
		b = strconv.AppendUint(b, uint64(c.Related.Port()), 10)
	}
	if c.TCPType != TCPTypeNone {
		b = append(b, " tcptype "...)
		b = append(b, c.TCPType.String()...)
	}
	for _, e := range c.Extensions {
		b = append(b, ' ')
		b = append(b, e.Key...)
		b = append(b, ' ')
		b = append(b, e.Value...)
	}
	return b
}

// appendConnAddr writes a connection address: the FQDN when set, else the IP.
func appendConnAddr(b []byte, ap netip.AddrPort, host string) []byte {
	if host != "" {
		b = append(b, host...)
	} else {
		b = ap.Addr().AppendTo(b)
	}
	return b
}

// ErrUnsupported is wrapped by ParseCandidate when the line is well formed
// but names a transport or candidate type this package does not know. RFC
// 8839, Section 5.1, tells the agent to ignore such candidates, so callers
// branch on errors.Is(err, ErrUnsupported) and skip the line.
var ErrUnsupported = errors.New("ice: unsupported candidate")

// parseErr builds the error for bad input.
func parseErr(format string, args ...any) error {
	return fmt.Errorf("ice: parse candidate: "+format, args...)
}
