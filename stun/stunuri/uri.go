// Package stunuri parses and builds the STUN and TURN server URIs of
// RFC 7064 (https://www.rfc-editor.org/rfc/rfc7064) and RFC 7065
// (https://www.rfc-editor.org/rfc/rfc7065):
//
//	stun:HOST[:PORT]                        STUN over UDP or TCP
//	stuns:HOST[:PORT]                       STUN over TLS
//	turn:HOST[:PORT][?transport=udp|tcp]    TURN over UDP (default) or TCP
//	turns:HOST[:PORT][?transport=tcp]       TURN over TLS
//
// HOST is a DNS name, an IPv4 address or an IPv6 address in brackets, with
// an optional zone written as RFC 6874 says ("[fe80::1%25eth0]"). The port
// defaults to 3478, or 5349 for the secure schemes (RFC 7064, Section 3.1;
// RFC 7065, Section 3.1).
//
// A URI is a small comparable value: Parse reads one, a struct literal or
// FromAddrPort builds one, and String prints it back so that Parse gives
// the same value again:
//
//	u := stunuri.URI{Scheme: stunuri.TURN, Host: "2001:db8::1", Transport: stunuri.TCP}
//	u.String() // "turn:[2001:db8::1]?transport=tcp"
//
// The package owns no sockets and does no DNS lookups. Deviations from the
// RFCs' grammar, all towards rejecting input early with a clear error:
// a reg-name host may contain only letters, digits, '-', '.' and '_' (no
// percent-encoding); an empty port ("stun:host:") is an error rather than
// the default; and a turns: URI with transport=udp (TURN over DTLS) or any
// transport other than udp and tcp is reported as ErrUnsupported.
package stunuri

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Scheme is a URI scheme. The zero value is no scheme and is not valid.
type Scheme uint8

// The schemes of RFC 7064, Section 3.1 and RFC 7065, Section 3.1.
const (
	STUN  Scheme = iota + 1 // stun:
	STUNS                   // stuns: (STUN over TLS)
	TURN                    // turn:
	TURNS                   // turns: (TURN over TLS)
)

// Default ports (RFC 8489, Section 18.1; RFC 8656, Section 4).
const (
	DefaultPort    = 3478 // stun: and turn:
	DefaultTLSPort = 5349 // stuns: and turns:
)

// String returns the scheme's name without the colon.
func (s Scheme) String() string {
	switch s {
	case STUN:
		return "stun"
	case STUNS:
		return "stuns"
	case TURN:
		return "turn"
	case TURNS:
		return "turns"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// Secure reports whether the scheme runs over TLS (stuns:, turns:).
func (s Scheme) Secure() bool { return s == STUNS || s == TURNS }

// IsTURN reports whether the scheme names a TURN server (turn:, turns:).
func (s Scheme) IsTURN() bool { return s == TURN || s == TURNS }

// DefaultPort returns 5349 for the secure schemes and 3478 otherwise.
func (s Scheme) DefaultPort() uint16 {
	if s.Secure() {
		return DefaultTLSPort
	}
	return DefaultPort
}

// Transport is the value of a TURN URI's transport parameter
// (RFC 7065, Section 3.1). The zero value means the URI has none.
type Transport uint8

// Transports this package supports.
const (
	UDP Transport = iota + 1
	TCP
)

// String returns "udp", "tcp", or "" for no transport.
func (t Transport) String() string {
	switch t {
	case 0:
		return ""
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// ErrUnsupported is wrapped by the errors for URIs that are well formed
// but ask for what this implementation does not do: TURN over DTLS
// (turns: with transport=udp) and transports other than udp and tcp.
// A program reading a list of servers may skip those and keep the rest.
var ErrUnsupported = errors.New("unsupported")

// URI is a STUN or TURN server URI. The zero value is not a valid URI.
// A URI is a plain value: it is comparable, safe to copy and to use from
// several goroutines.
type URI struct {
	Scheme Scheme
	// Host is a DNS name, an IPv4 address or an IPv6 address, the last
	// without brackets and with its zone, if any, after a plain '%'.
	Host string
	// Port is 0 when the URI has none; then Scheme.DefaultPort applies
	// (see PortOrDefault).
	Port uint16
	// Transport is the transport parameter of a turn: or turns: URI, or
	// zero when there is none; stun: and stuns: URIs have none.
	Transport Transport
}

// FromAddrPort returns the URI of a server at ap, with an explicit port
// and no transport parameter. An IPv4-mapped IPv6 address becomes IPv4.
func FromAddrPort(s Scheme, ap netip.AddrPort) URI {
	return URI{Scheme: s, Host: ap.Addr().Unmap().String(), Port: ap.Port()}
}

// MustParse is Parse that panics on error, for URIs written in the
// program's source.
func MustParse(s string) URI {
	u, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Parse parses a stun:, stuns:, turn: or turns: URI. Scheme and the
// transport parameter are case-insensitive (RFC 3986, Section 3.1); the host
// is kept as written.
func Parse(s string) (URI, error) {
	bad := func(format string, a ...any) (URI, error) {
		return URI{}, fmt.Errorf("stunuri: bad URI %q: %s", s, fmt.Sprintf(format, a...))
	}
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		return bad("want stun:, stuns:, turn: or turns: HOST[:PORT]")
	}
	var u URI
	switch asciiLower(name) {
	case "stun":
		u.Scheme = STUN
	case "stuns":
		u.Scheme = STUNS
	case "turn":
		u.Scheme = TURN
	case "turns":
		u.Scheme = TURNS
	default:
		return bad("scheme must be stun, stuns, turn or turns")
	}
	if strings.HasPrefix(rest, "//") {
		return bad("no // after the scheme (RFC 7064, Section 3.1)")
	}
	if strings.ContainsRune(rest, '#') {
		return bad("a fragment is not allowed")
	}
	hostport, query, hasQuery := strings.Cut(rest, "?")
	var err error
	if u.Host, u.Port, err = ParseHostPort(hostport); err != nil {
		return bad("%v", err)
	}
	if hasQuery {
		if !u.Scheme.IsTURN() {
			return bad("%s: URIs take no parameters (RFC 7064)", u.Scheme)
		}
		if u.Transport, err = parseQuery(query); err != nil {
			if errors.Is(err, ErrUnsupported) {
				return URI{}, fmt.Errorf("stunuri: %q: %w", s, err)
			}
			return bad("%v", err)
		}
	}
	if err := u.validate(); err != nil {
		return URI{}, fmt.Errorf("stunuri: %q: %w", s, err)
	}
	return u, nil
}

// parseQuery parses the one parameter RFC 7065 allows:
// "transport=" transport, where transport = "udp" / "tcp" / 1*unreserved.
func parseQuery(q string) (Transport, error) {
	if q == "" {
		return 0, errors.New("empty query")
	}
	if strings.ContainsRune(q, '&') {
		return 0, fmt.Errorf("more than one parameter in %q; RFC 7065 allows transport only", q)
	}
	key, val, _ := strings.Cut(q, "=")
	if asciiLower(key) != "transport" {
		return 0, fmt.Errorf("unknown parameter %q; RFC 7065 allows transport only", key)
	}
	switch asciiLower(val) {
	case "udp":
		return UDP, nil
	case "tcp":
		return TCP, nil
	}
	if val == "" || strings.IndexFunc(val, func(r rune) bool { return !unreserved(r) }) >= 0 {
		return 0, fmt.Errorf("bad transport %q", val)
	}
	return 0, fmt.Errorf("%w: transport %q (udp and tcp are)", ErrUnsupported, val)
}

// ParseHostPort parses HOST[:PORT], the part of a URI after the scheme:
// a DNS name, an IPv4 address, or an IPv6 address in brackets with an
// optional zone ("[fe80::1%25eth0]", or leniently "[fe80::1%eth0]", as
// RFC 6874, Section 4 suggests for typed input). The IPv6 address comes
// back without brackets, its zone after a plain '%'. port is 0 when s has
// none; a port of 0 is an error.
func ParseHostPort(s string) (host string, port uint16, err error) {
	portStr, hasPort := "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("no ] after the IPv6 address in %q", s)
		}
		host, err = parseIPLiteral(s[1:end])
		if err != nil {
			return "", 0, err
		}
		switch after := s[end+1:]; {
		case after == "":
		case after[0] == ':':
			portStr, hasPort = after[1:], true
		default:
			return "", 0, fmt.Errorf("unexpected %q after the IPv6 address", after)
		}
	} else {
		host, portStr, hasPort = strings.Cut(s, ":")
		if strings.ContainsRune(portStr, ':') {
			return "", 0, fmt.Errorf("%q: an IPv6 address must be in brackets", s)
		}
		if strings.ContainsRune(host, '@') {
			return "", 0, errors.New("userinfo (user@) is not allowed")
		}
		if err := checkName(host); err != nil {
			return "", 0, err
		}
	}
	if !hasPort {
		return host, 0, nil
	}
	if portStr == "" || strings.IndexFunc(portStr, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	n, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("bad port %q (want 1-65535)", portStr)
	}
	return host, uint16(n), nil
}

// parseIPLiteral parses what is between the brackets of an IP-literal
// (RFC 3986, Section 3.2.2, with the zones of RFC 6874).
func parseIPLiteral(lit string) (string, error) {
	addr, zone, hasZone := strings.Cut(lit, "%")
	if hasZone && len(zone) > 2 && zone[:2] == "25" {
		zone = zone[2:] // RFC 6874: "%25" introduces the zone
	}
	host := addr
	if hasZone {
		host = addr + "%" + zone
	}
	if err := checkIPv6(host); err != nil {
		return "", err
	}
	return host, nil
}

// checkIPv6 checks an IPv6 address with an optional zone of 1*unreserved.
func checkIPv6(host string) error {
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is6() {
		return fmt.Errorf("bad IPv6 address %q", host)
	}
	if _, zone, ok := strings.Cut(host, "%"); ok {
		if zone == "" || strings.IndexFunc(zone, func(r rune) bool { return !unreserved(r) }) >= 0 {
			return fmt.Errorf("bad zone %q in %q", zone, host)
		}
	}
	return nil
}

// checkName checks a host that is not an IPv6 address: a DNS name made of
// letters, digits, '-', '.' and '_', or an IPv4 address.
func checkName(host string) error {
	if host == "" {
		return errors.New("no host")
	}
	if len(host) > 253 {
		return fmt.Errorf("host of %d bytes exceeds 253", len(host))
	}
	digits := true
	for _, r := range host {
		switch {
		case r >= '0' && r <= '9' || r == '.':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_':
			digits = false
		default:
			return fmt.Errorf("invalid character %q in host %q", r, host)
		}
	}
	if digits {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is4() {
			return fmt.Errorf("bad IPv4 address %q", host)
		}
	}
	return nil
}

// asciiLower lowers ASCII letters only: URI schemes and ABNF strings are
// case-insensitive in ASCII (RFC 3986, Section 3.1; RFC 5234, Section
// 2.3), and Unicode folding would read U+017F (LATIN SMALL LETTER LONG S) as 's'.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// unreserved reports whether r is an RFC 3986 unreserved character.
func unreserved(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '-' || r == '.' || r == '_' || r == '~'
}

// Validate reports whether u is a URI this package can print and parse
// back: a known scheme, a valid host, and a transport that the scheme
// allows. Errors for TURN over DTLS wrap ErrUnsupported.
func (u URI) Validate() error {
	if err := u.validate(); err != nil {
		return fmt.Errorf("stunuri: %w", err)
	}
	return nil
}

func (u URI) validate() error {
	switch {
	case u.Scheme < STUN || u.Scheme > TURNS:
		return fmt.Errorf("unknown scheme %s", u.Scheme)
	case u.Transport > TCP:
		return fmt.Errorf("unknown transport %s", u.Transport)
	case u.Transport != 0 && !u.Scheme.IsTURN():
		return fmt.Errorf("%s: URIs have no transport (RFC 7064)", u.Scheme)
	case u.Scheme == TURNS && u.Transport == UDP:
		return fmt.Errorf("%w: turns: with transport=udp is TURN over DTLS", ErrUnsupported)
	}
	if strings.ContainsRune(u.Host, ':') {
		return checkIPv6(u.Host)
	}
	return checkName(u.Host)
}

// String returns the URI in the form Parse reads: the scheme in lower
// case, an IPv6 host in brackets with its zone as "%25zone", the port only
// if set, and the transport parameter only if set.
func (u URI) String() string {
	return string(u.appendText(make([]byte, 0, 24+len(u.Host))))
}

// AppendText implements encoding.TextAppender: it appends String's text
// to b and never fails.
func (u URI) AppendText(b []byte) ([]byte, error) { return u.appendText(b), nil }

func (u URI) appendText(b []byte) []byte {
	b = append(b, u.Scheme.String()...)
	b = append(b, ':')
	if strings.ContainsRune(u.Host, ':') {
		addr, zone, hasZone := strings.Cut(u.Host, "%")
		b = append(b, '[')
		b = append(b, addr...)
		if hasZone {
			b = append(b, "%25"...)
			b = append(b, zone...)
		}
		b = append(b, ']')
	} else {
		b = append(b, u.Host...)
	}
	if u.Port != 0 {
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(u.Port), 10)
	}
	if u.Transport != 0 {
		b = append(b, "?transport="...)
		b = append(b, u.Transport.String()...)
	}
	return b
}

// MarshalText implements encoding.TextMarshaler; it fails for a URI that
// does not Validate.
func (u URI) MarshalText() ([]byte, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return u.appendText(nil), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with Parse.
func (u *URI) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// Secure reports whether the URI's scheme runs over TLS.
func (u URI) Secure() bool { return u.Scheme.Secure() }

// IsTURN reports whether the URI names a TURN server.
func (u URI) IsTURN() bool { return u.Scheme.IsTURN() }

// PortOrDefault returns Port, or the scheme's default port when Port is 0.
func (u URI) PortOrDefault() uint16 {
	if u.Port != 0 {
		return u.Port
	}
	return u.Scheme.DefaultPort()
}

// TransportOrDefault returns Transport, or when it is unset the transport
// to use: UDP for stun: and turn:, TCP (carrying TLS) for stuns: and turns:.
// A stun: URI may also be used over TCP (RFC 7064, Section 3.2); that is
// the caller's choice.
func (u URI) TransportOrDefault() Transport {
	switch {
	case u.Transport != 0:
		return u.Transport
	case u.Secure():
		return TCP
	}
	return UDP
}

// Network returns the Go network ("udp" or "tcp") to dial for the URI's
// TransportOrDefault; a secure URI then needs TLS on top of "tcp".
func (u URI) Network() string { return u.TransportOrDefault().String() }

// Addr returns the host as an address, or the zero (invalid) Addr when
// the host is a DNS name. An IPv4-mapped IPv6 address comes back as IPv4.
func (u URI) Addr() netip.Addr {
	if a, err := netip.ParseAddr(u.Host); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// AddrPort returns Addr with PortOrDefault, or the zero (invalid)
// AddrPort when the host is a DNS name.
func (u URI) AddrPort() netip.AddrPort {
	a := u.Addr()
	if !a.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, u.PortOrDefault())
}

// HostPort returns "host:port" with PortOrDefault and an IPv6 host in
// brackets, as net.Dial and net.Resolver take it.
func (u URI) HostPort() string {
	return net.JoinHostPort(u.Host, strconv.FormatUint(uint64(u.PortOrDefault()), 10))
}
