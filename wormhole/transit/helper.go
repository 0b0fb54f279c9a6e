package transit

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultRelay is magic-wormhole's public transit relay, the one its tools
// use by default (Debian's build points at a mirror of it), as HOST:PORT.
const DefaultRelay = "transit.magic-wormhole.io:4001"

// ErrBadRelayHint: a transit relay that ParseRelayHint cannot read.
var ErrBadRelayHint = errors.New("transit: bad transit relay")

// ParseRelayHint reads a transit relay as magic-wormhole's --transit-helper
// takes it, "tcp:HOST:PORT" (options after the port, such as
// ":priority=2.0", are ignored), or as plain "HOST:PORT", and returns
// "HOST:PORT" for Config.Relays. An IPv6 address goes in brackets:
// "tcp:[::1]:4001".
func ParseRelayHint(s string) (string, error) {
	rest := s
	if typ, after, ok := strings.Cut(s, ":"); ok && typ == "tcp" {
		rest = after
	} else if ok && typ != "" && !strings.ContainsAny(typ, "[.") {
		if _, err := strconv.Atoi(after); err != nil {
			return "", fmt.Errorf("%w: %q: unknown hint type %q (want tcp:HOST:PORT)", ErrBadRelayHint, s, typ)
		}
	}
	var host, port string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return "", fmt.Errorf("%w: %q: unclosed [", ErrBadRelayHint, s)
		}
		host, rest = rest[1:end], rest[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return "", fmt.Errorf("%w: %q: no port", ErrBadRelayHint, s)
		}
		port, _, _ = strings.Cut(rest[1:], ":")
	} else {
		var ok bool
		host, rest, ok = strings.Cut(rest, ":")
		if !ok {
			return "", fmt.Errorf("%w: %q: no port (want tcp:HOST:PORT)", ErrBadRelayHint, s)
		}
		port, _, _ = strings.Cut(rest, ":")
	}
	p, err := strconv.Atoi(port)
	switch {
	case host == "" || len(host) > 255 || strings.ContainsAny(host, " /[]\t\n\x00"):
		return "", fmt.Errorf("%w: %q: bad host", ErrBadRelayHint, s)
	case err != nil || p < 1 || p > 65535:
		return "", fmt.Errorf("%w: %q: bad port %q", ErrBadRelayHint, s, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}
