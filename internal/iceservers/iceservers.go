// Package iceservers mints what an ICE client needs to use this server:
// its STUN and TURN URIs (RFC 7064, RFC 7065) and ephemeral TURN
// credentials in the TURN REST API scheme (draft-uberti-behave-turn-rest-00,
// turn.RESTCredentials), in the shape of WebRTC's RTCIceServer. It is the
// one place that mints them: the rendezvous' icebreaker-ice-servers
// command calls it, and so does the ICE test page (internal/icepage).
package iceservers

import (
	"crypto/subtle"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/turn"
)

// Command is the rendezvous command that asks for the ICE servers, and
// the type of its reply.
const Command = "icebreaker-ice-servers"

// Reply is what a client that asks for the ICE servers receives: the
// answer to Command, and the ICE test page's JSON.
type Reply struct {
	Type       string   `json:"type"` // Command
	ICEServers []Server `json:"ice_servers"`
	TTL        int      `json:"ttl"` // seconds the credentials are valid
}

// Server is one entry of the list, as WebRTC's RTCIceServer.
type Server struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Config says what this server offers. Its zero value offers nothing.
type Config struct {
	UDPPort uint16 // UDP port of STUN and TURN; 0 = none
	TCPPort uint16 // TCP port of TURN; 0 = none
	TLSPort uint16 // TLS port of TURN (turns:); 0 = none
	Secret  string // the REST secret that signs; "" = no TURN entry
	// Rotating, when not nil, gives the signing secret at each Mint in
	// place of Secret, so that a configuration reload that rotates the
	// REST secrets reaches the credentials minted from then on.
	Rotating   *Secret
	TTL        time.Duration
	PublicHost string // the host to put in the URIs; "" = the caller's
	Token      string // when set, Mint requires it
}

// ErrToken is returned for a missing or wrong token.
var ErrToken = errors.New("missing or wrong token")

// Mint returns the ICE servers for a client that reached this server by
// host (used unless PublicHost is set), with credentials for user that
// expire TTL after now. token is what the client presented.
func (c Config) Mint(host, token, user string, now time.Time) ([]Server, error) {
	if c.Token != "" && subtle.ConstantTimeCompare([]byte(c.Token), []byte(token)) != 1 {
		return nil, ErrToken
	}
	if c.PublicHost != "" {
		host = c.PublicHost
	}
	if host == "" || strings.ContainsAny(host, "/?#@ \t\r\n") {
		return nil, errors.New("no usable host name")
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && a.Is6() {
		host = "[" + a.String() + "]"
	}
	secret := c.secret()
	var out []Server
	port := func(p uint16) string { return strconv.Itoa(int(p)) }
	if c.UDPPort != 0 {
		out = append(out, Server{URLs: []string{"stun:" + host + ":" + port(c.UDPPort)}})
	}
	if secret != "" && (c.UDPPort != 0 || c.TCPPort != 0 || c.TLSPort != 0) {
		username, password := turn.RESTCredentials(secret, user, now.Add(c.TTL))
		s := Server{Username: username, Credential: password}
		if c.UDPPort != 0 {
			s.URLs = append(s.URLs, "turn:"+host+":"+port(c.UDPPort)+"?transport=udp")
		}
		if c.TCPPort != 0 {
			s.URLs = append(s.URLs, "turn:"+host+":"+port(c.TCPPort)+"?transport=tcp")
		}
		if c.TLSPort != 0 {
			s.URLs = append(s.URLs, "turns:"+host+":"+strconv.Itoa(int(c.TLSPort))+"?transport=tcp")
		}
		out = append(out, s)
	}
	return out, nil
}

// MintReply is Mint, wrapped in a Reply.
func (c Config) MintReply(host, token, user string, now time.Time) (Reply, error) {
	servers, err := c.Mint(host, token, user, now)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Type: Command, ICEServers: servers, TTL: int(c.TTL / time.Second)}, nil
}

// HasSecret reports whether c has a secret to sign TURN credentials with.
func (c Config) HasSecret() bool { return c.secret() != "" }

func (c Config) secret() string {
	if c.Rotating != nil {
		return c.Rotating.Get()
	}
	return c.Secret
}

// Secret holds a REST secret that a running server may replace (a
// configuration reload). Its zero value holds "". It is safe for
// concurrent use.
type Secret struct{ p atomic.Pointer[string] }

// NewSecret returns a Secret holding v.
func NewSecret(v string) *Secret {
	s := new(Secret)
	s.Set(v)
	return s
}

// Set replaces the secret.
func (s *Secret) Set(v string) { s.p.Store(&v) }

// Get returns the secret.
func (s *Secret) Get() string {
	if v := s.p.Load(); v != nil {
		return *v
	}
	return ""
}
