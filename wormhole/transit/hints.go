package transit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Hint types and abilities of transit.md.
const (
	TypeDirectTCP = "direct-tcp-v1"
	TypeRelay     = "relay-v1"
)

// ErrBadHints: a transit message that cannot be used.
var ErrBadHints = errors.New("transit: malformed transit message")

// Message is the body of the "transit" key that each side sends through the
// wormhole before connecting: what it can do and where it can be reached.
// A plain value; the zero Message announces nothing (then only relays that
// this side knows itself can connect).
type Message struct {
	Abilities []Ability `json:"abilities-v1"`
	Hints     []Hint    `json:"hints-v1"`
}

// Ability names a connection type a side supports.
type Ability struct {
	Type string `json:"type"`
}

// Hint is one place to reach a side: a direct-tcp-v1 hint (Hostname, Port,
// Priority), or a relay-v1 hint listing the relay's direct-tcp-v1 hints.
// Other types are kept and ignored, as the real peers do.
type Hint struct {
	Type     string  `json:"type"`
	Hostname string  `json:"hostname,omitempty"`
	Port     int     `json:"port,omitempty"`
	Priority float64 `json:"priority"`
	Hints    []Hint  `json:"hints,omitempty"`
}

// Addr returns host:port of a direct-tcp-v1 hint.
func (h Hint) Addr() string { return net.JoinHostPort(h.Hostname, strconv.Itoa(h.Port)) }

// ParseMessage decodes a transit message and checks its hints: a direct
// hint needs a hostname and a port in 1..65535, a relay hint at least one
// valid direct hint. Hints of unknown types are dropped.
func ParseMessage(b []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHints, err)
	}
	var hints []Hint
	for _, h := range m.Hints {
		switch h.Type {
		case TypeDirectTCP:
			if err := checkDirect(h); err != nil {
				return nil, err
			}
			hints = append(hints, Hint{Type: h.Type, Hostname: h.Hostname, Port: h.Port, Priority: h.Priority})
		case TypeRelay:
			r := Hint{Type: TypeRelay}
			for _, d := range h.Hints {
				if d.Type != TypeDirectTCP {
					continue
				}
				if err := checkDirect(d); err != nil {
					return nil, err
				}
				r.Hints = append(r.Hints, Hint{Type: d.Type, Hostname: d.Hostname, Port: d.Port, Priority: d.Priority})
			}
			if len(r.Hints) == 0 {
				return nil, fmt.Errorf("%w: relay-v1 hint without direct-tcp-v1 hints", ErrBadHints)
			}
			hints = append(hints, r)
		}
	}
	m.Hints = hints
	return &m, nil
}

func checkDirect(h Hint) error {
	if h.Hostname == "" || len(h.Hostname) > 255 || h.Port < 1 || h.Port > 65535 {
		return fmt.Errorf("%w: direct-tcp-v1 hint %q port %d", ErrBadHints, h.Hostname, h.Port)
	}
	return nil
}

// DirectHint makes a direct-tcp-v1 hint for ap.
func DirectHint(ap netip.AddrPort, priority float64) Hint {
	return Hint{Type: TypeDirectTCP, Hostname: ap.Addr().Unmap().String(), Port: int(ap.Port()), Priority: priority}
}

// has reports whether the message announces ability typ (a message without
// abilities is taken to support direct-tcp-v1 only).
func (m *Message) has(typ string) bool {
	if len(m.Abilities) == 0 {
		return typ == TypeDirectTCP
	}
	for _, a := range m.Abilities {
		if a.Type == typ {
			return true
		}
	}
	return false
}
