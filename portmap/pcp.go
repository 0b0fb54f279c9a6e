package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// PCP wire constants, RFC 6887, Sections 7 and 11.
const (
	pcpVersion    = 2
	pcpPort       = 5351 // also NAT-PMP's, RFC 6886, Section 3.1
	pcpOpAnnounce = 0
	pcpOpMap      = 1
	pcpResponse   = 0x80 // the R bit of the opcode byte

	pcpHeaderLen = 24
	pcpMapLen    = 36 // MAP opcode-specific data, Section 11.1
	pcpMaxLen    = 1100

	protoUDP = 17
)

// PCPResultCode is a PCP result code, RFC 6887, Section 7.4.
type PCPResultCode uint8

// PCP result codes, RFC 6887, Section 7.4.
const (
	PCPSuccess               PCPResultCode = 0
	PCPUnsuppVersion         PCPResultCode = 1
	PCPNotAuthorized         PCPResultCode = 2
	PCPMalformedRequest      PCPResultCode = 3
	PCPUnsuppOpcode          PCPResultCode = 4
	PCPUnsuppOption          PCPResultCode = 5
	PCPMalformedOption       PCPResultCode = 6
	PCPNetworkFailure        PCPResultCode = 7
	PCPNoResources           PCPResultCode = 8
	PCPUnsuppProtocol        PCPResultCode = 9
	PCPUserExQuota           PCPResultCode = 10
	PCPCannotProvideExternal PCPResultCode = 11
	PCPAddressMismatch       PCPResultCode = 12
	PCPExcessiveRemotePeers  PCPResultCode = 13
)

var pcpResultNames = [...]string{
	"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
	"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
	"NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA",
	"CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
}

func (c PCPResultCode) String() string {
	if int(c) < len(pcpResultNames) {
		return pcpResultNames[c]
	}
	return "PCPResultCode(" + strconv.Itoa(int(c)) + ")"
}

// PCPError is a PCP response with a result code other than SUCCESS. Lifetime
// is the response's lifetime, which for an error says how long the error
// is expected to last (RFC 6887, Section 7.2).
type PCPError struct {
	Code     PCPResultCode
	Lifetime uint32
}

func (e *PCPError) Error() string {
	return fmt.Sprintf("portmap: PCP error %d (%s)", e.Code, e.Code)
}

// Transient reports whether RFC 6887, Section 7.4, calls the error
// short-term, so that a retry may succeed.
func (e *PCPError) Transient() bool {
	switch e.Code {
	case PCPNetworkFailure, PCPNoResources, PCPUserExQuota, PCPExcessiveRemotePeers:
		return true
	}
	return false
}

// errNotPCP is returned by parsePCPResponse for a NAT-PMP (version 0)
// packet: the server speaks NAT-PMP only (RFC 6887, Section 9).
var errNotPCP = errors.New("portmap: server answered with NAT-PMP (version 0)")

// pcpMap is the MAP opcode data of a request or a response, RFC 6887,
// Section 11.1. In a response Port and Addr are the assigned external ones.
type pcpMap struct {
	Nonce        [12]byte
	Protocol     uint8
	InternalPort uint16
	Port         uint16     // suggested (request) or assigned (response) external port
	Addr         netip.Addr // suggested or assigned external address, IPv4 or IPv6
}

// pcpResponse is a parsed PCP response, RFC 6887, Section 7.2.
type pcpResp struct {
	Opcode   uint8 // without the R bit
	Result   PCPResultCode
	Lifetime uint32
	Epoch    uint32
	Map      pcpMap // valid when Opcode is pcpOpMap
}

// appendPCPMapRequest appends a MAP request (RFC 6887, Sections 7.1 and
// 11.1) from client for m with the given lifetime in seconds; lifetime 0
// deletes the mapping (Section 15).
func appendPCPMapRequest(b []byte, client netip.Addr, lifetime uint32, m *pcpMap) []byte {
	b = appendPCPHeader(b, pcpOpMap, lifetime, client)
	b = append(b, m.Nonce[:]...)
	b = append(b, m.Protocol, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, m.InternalPort)
	b = binary.BigEndian.AppendUint16(b, m.Port)
	return appendPCPAddr(b, m.Addr)
}

// appendPCPAnnounceRequest appends an ANNOUNCE request, RFC 6887, Section
// 14.1: the cheapest way to learn whether a server speaks PCP.
func appendPCPAnnounceRequest(b []byte, client netip.Addr) []byte {
	return appendPCPHeader(b, pcpOpAnnounce, 0, client)
}

func appendPCPHeader(b []byte, op uint8, lifetime uint32, client netip.Addr) []byte {
	b = append(b, pcpVersion, op, 0, 0)
	b = binary.BigEndian.AppendUint32(b, lifetime)
	return appendPCPAddr(b, client)
}

// appendPCPAddr appends a 128-bit address field: IPv6, or IPv4 as an
// IPv4-mapped IPv6 address (RFC 6887, Section 5). An invalid address is
// the IPv4-mapped 0.0.0.0, which Section 11.1 asks for when no external
// IPv4 address is suggested.
func appendPCPAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	s := a.As16()
	return append(b, s[:]...)
}

func readPCPAddr(b []byte) netip.Addr {
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// parsePCPResponse parses a PCP response, RFC 6887, Sections 7.2 and 11.1.
// Options after the opcode data are checked for length and skipped. A
// version 0 packet returns errNotPCP.
func parsePCPResponse(b []byte) (pcpResp, error) {
	var r pcpResp
	switch {
	case len(b) >= 1 && b[0] == 0:
		return r, errNotPCP
	case len(b) < pcpHeaderLen:
		return r, fmt.Errorf("portmap: PCP response of %d bytes, shorter than its header", len(b))
	case len(b) > pcpMaxLen || len(b)%4 != 0:
		return r, fmt.Errorf("portmap: PCP response of %d bytes", len(b))
	case b[0] != pcpVersion:
		return r, fmt.Errorf("portmap: PCP response version %d", b[0])
	case b[1]&pcpResponse == 0:
		return r, errors.New("portmap: PCP request where a response was expected")
	}
	r.Opcode = b[1] &^ pcpResponse
	r.Result = PCPResultCode(b[3])
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	rest := b[pcpHeaderLen:]
	if r.Opcode == pcpOpMap {
		if len(rest) < pcpMapLen {
			if r.Result != PCPSuccess {
				// Section 7.2: an error response may be truncated.
				return r, nil
			}
			return r, fmt.Errorf("portmap: PCP MAP response with %d bytes of MAP data", len(rest))
		}
		m := &r.Map
		copy(m.Nonce[:], rest[:12])
		m.Protocol = rest[12]
		m.InternalPort = binary.BigEndian.Uint16(rest[16:18])
		m.Port = binary.BigEndian.Uint16(rest[18:20])
		m.Addr = readPCPAddr(rest[20:36])
		rest = rest[pcpMapLen:]
	}
	// Options, Section 7.3: code, reserved, 16-bit length, data padded
	// to a multiple of 4.
	for len(rest) > 0 {
		if len(rest) < 4 {
			return r, errors.New("portmap: PCP option header truncated")
		}
		n := int(binary.BigEndian.Uint16(rest[2:4]))
		padded := 4 + (n+3)&^3
		if padded > len(rest) {
			return r, fmt.Errorf("portmap: PCP option %d of %d bytes overruns the packet", rest[0], n)
		}
		rest = rest[padded:]
	}
	return r, nil
}

// appendPCPResponse appends r as a response without options: the inverse
// of parsePCPResponse, for tests and fuzzing.
func appendPCPResponse(b []byte, r *pcpResp) []byte {
	b = append(b, pcpVersion, r.Opcode|pcpResponse, 0, uint8(r.Result))
	b = binary.BigEndian.AppendUint32(b, r.Lifetime)
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	b = append(b, make([]byte, 12)...)
	if r.Opcode == pcpOpMap {
		m := &r.Map
		b = append(b, m.Nonce[:]...)
		b = append(b, m.Protocol, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, m.InternalPort)
		b = binary.BigEndian.AppendUint16(b, m.Port)
		b = appendPCPAddr(b, m.Addr)
	}
	return b
}
