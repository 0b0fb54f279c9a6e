package ice

import (
	"net/netip"
	"strconv"
	"strings"
)

// ParseCandidate parses one candidate attribute, RFC 8839, Section 5.1:
//
//	candidate:<foundation> <component> <transport> <priority>
//	    <connection-address> <port> typ <type> [raddr <addr>] [rport <port>]
//	    *(<extension-name> <extension-value>)
//
// The input may carry the SDP "a=" prefix and the "candidate:" prefix, each
// optional, and surrounding white space or a trailing CRLF. Fields are
// separated by spaces or tabs. The transport is case-insensitive. "tcptype" (RFC 6544, Section 4.5), "raddr"
// and "rport" may appear anywhere among the extensions, each once.
//
// A well-formed line with an unknown transport or candidate type returns an
// error wrapping ErrUnsupported; every other problem is a plain error that
// names the field and never a panic. The strings of the result are
// substrings of s.
func ParseCandidate(s string) (Candidate, error) {
	var c Candidate
	s = strings.Trim(s, " \t\r\n")
	s = strings.TrimPrefix(s, "a=")
	if len(s) >= len("candidate:") && strings.EqualFold(s[:len("candidate:")], "candidate:") {
		s = s[len("candidate:"):]
	}
	f := fields{s: s}

	// foundation = 1*32ice-char
	tok, ok := f.next()
	if !ok {
		return c, parseErr("empty")
	}
	if len(tok) > 32 || !allChars(tok, isIceChar) {
		return c, parseErr("bad foundation %q (want 1 to 32 of ALPHA, DIGIT, '+', '/')", tok)
	}
	c.Foundation = tok

	// component-id = 1*3DIGIT, 1 to 256 (RFC 8445, Section 5.1.1).
	tok, ok = f.next()
	if !ok {
		return c, parseErr("missing component")
	}
	n, err := parseDigits(tok, 3)
	if err != nil || n < 1 || n > 256 {
		return c, parseErr("bad component %q (want 1 to 256)", tok)
	}
	c.Component = uint16(n)

	// transport = "UDP" / transport-extension
	tok, ok = f.next()
	if !ok {
		return c, parseErr("missing transport")
	}
	switch {
	case strings.EqualFold(tok, "udp"):
		c.Transport = TransportUDP
	case strings.EqualFold(tok, "tcp"):
		c.Transport = TransportTCP
	case allChars(tok, isTokenChar):
		return c, parseErr("transport %q: %w", tok, ErrUnsupported)
	default:
		return c, parseErr("bad transport %q", tok)
	}

	// priority = 1*10DIGIT
	tok, ok = f.next()
	if !ok {
		return c, parseErr("missing priority")
	}
	n, err = parseDigits(tok, 10)
	if err != nil || n > 1<<32-1 {
		return c, parseErr("bad priority %q (want 0 to 4294967295)", tok)
	}
	c.Priority = uint32(n)

	// connection-address SP port
	addrTok, ok := f.next()
	if !ok {
		return c, parseErr("missing connection address")
	}
	portTok, ok := f.next()
	if !ok {
		return c, parseErr("missing port")
	}
	c.Addr, c.Host, err = parseConnAddr(addrTok, portTok)
	if err != nil {
		return c, err
	}

	// cand-type = "typ" SP candidate-types
	tok, ok = f.next()
	if !ok {
		return c, parseErr("missing \"typ\"")
	}
	if !strings.EqualFold(tok, "typ") {
		return c, parseErr("want \"typ\", got %q", tok)
	}
	tok, ok = f.next()
	if !ok {
		return c, parseErr("missing candidate type")
	}
	switch tok {
	case "host":
		c.Type = TypeHost
	case "srflx":
		c.Type = TypeServerReflexive
	case "prflx":
		c.Type = TypePeerReflexive
	case "relay":
		c.Type = TypeRelay
	default:
		if allChars(tok, isTokenChar) {
			return c, parseErr("candidate type %q: %w", tok, ErrUnsupported)
		}
		return c, parseErr("bad candidate type %q", tok)
	}

	// [SP rel-addr] [SP rel-port] *(SP cand-extension), with RFC 6544's
	// tcptype among the extensions. raddr, rport and tcptype are taken
	// wherever they appear, once each, so that marshalling them back in
	// their canonical place keeps the meaning.
	var raddr, rport string
	var haveTCPType bool
	for {
		key, ok := f.next()
		if !ok {
			break
		}
		val, ok := f.next()
		if !ok {
			return c, parseErr("extension %q has no value", key)
		}
		switch key {
		case "raddr":
			if raddr != "" {
				return c, parseErr("duplicate raddr")
			}
			raddr = val
			continue
		case "rport":
			if rport != "" {
				return c, parseErr("duplicate rport")
			}
			rport = val
			continue
		case "tcptype":
			if haveTCPType {
				return c, parseErr("duplicate tcptype")
			}
			haveTCPType = true
			if c.Transport != TransportTCP {
				return c, parseErr("tcptype on a %v candidate", c.Transport)
			}
			switch val {
			case "active":
				c.TCPType = TCPTypeActive
			case "passive":
				c.TCPType = TCPTypePassive
			case "so":
				c.TCPType = TCPTypeSO
			default:
				return c, parseErr("bad tcptype %q (want active, passive or so)", val)
			}
			continue
		}
		if !allChars(key, isTokenChar) {
			return c, parseErr("bad extension name %q", key)
		}
		if !allChars(val, isVChar) {
			return c, parseErr("bad value %q of extension %q", val, key)
		}
		c.Extensions = append(c.Extensions, Ext{Key: key, Value: val})
	}
	switch {
	case raddr != "":
		if rport == "" {
			rport = "0" // RFC 8839 makes rport optional; the port is then unknown.
		}
		c.Related, c.RelatedHost, err = parseConnAddr(raddr, rport)
		if err != nil {
			return c, parseErr("related address: %w", err)
		}
	case rport != "":
		return c, parseErr("rport without raddr")
	}
	return c, nil
}

// parseConnAddr parses connection-address and port: an IP address without
// zone, or an FQDN whose last label is not all digits.
func parseConnAddr(addr, port string) (netip.AddrPort, string, error) {
	p, err := parseDigits(port, 5)
	if err != nil || p > 65535 {
		return netip.AddrPort{}, "", parseErr("bad port %q", port)
	}
	ip, err := netip.ParseAddr(addr)
	if err == nil {
		if ip.Zone() != "" {
			return netip.AddrPort{}, "", parseErr("address %q has a zone", addr)
		}
		return netip.AddrPortFrom(ip, uint16(p)), "", nil
	}
	if !isFQDN(addr) {
		return netip.AddrPort{}, "", parseErr("bad connection address %q (want an IP address or a host name)", addr)
	}
	return netip.AddrPortFrom(netip.Addr{}, uint16(p)), addr, nil
}

// isFQDN reports whether s is a plausible DNS name: labels of 1 to 63 letters,
// digits, '-' or '_', 253 bytes at most, the last label not all digits (so
// that a malformed IPv4 address is not taken for a name).
func isFQDN(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	last := ""
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !isAlpha(ch) && !isDigit(ch) && ch != '-' && ch != '_' {
				return false
			}
		}
		last = label
	}
	return !allChars(last, isDigit)
}

// parseDigits parses 1 to max decimal digits.
func parseDigits(s string, max int) (uint64, error) {
	if len(s) == 0 || len(s) > max || !allChars(s, isDigit) {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, 64)
}

// fields walks s one field at a time, split by runs of spaces and tabs.
type fields struct{ s string }

func (f *fields) next() (string, bool) {
	i := 0
	for i < len(f.s) && (f.s[i] == ' ' || f.s[i] == '\t') {
		i++
	}
	j := i
	for j < len(f.s) && f.s[j] != ' ' && f.s[j] != '\t' {
		j++
	}
	tok := f.s[i:j]
	f.s = f.s[j:]
	return tok, tok != ""
}

func allChars(s string, ok func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIceChar: ALPHA / DIGIT / "+" / "/". RFC 8839, Section 5.1.
func isIceChar(c byte) bool { return isAlpha(c) || isDigit(c) || c == '+' || c == '/' }

// isTokenChar: RFC 8866, Section 9 (token-char).
func isTokenChar(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2A || c == 0x2B ||
		c == 0x2D || c == 0x2E || isDigit(c) || (c >= 0x41 && c <= 0x5A) ||
		(c >= 0x5E && c <= 0x7E)
}

// isVChar: %x21-7E.
func isVChar(c byte) bool { return c >= 0x21 && c <= 0x7E }
