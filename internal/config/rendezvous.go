package config

import (
	"net/netip"
	"strings"
	"time"
)

// Default ports of the rendezvous: the mailbox WebSocket port
// magic-wormhole clients expect, its TLS (wss://) port, and the transit
// relay's.
const (
	DefaultRendezvousPort    = 4000
	DefaultRendezvousTLSPort = 4443
	DefaultTransitPort       = 4001
)

// Off is the listen value that turns a rendezvous service off.
const Off = "off"

// Rendezvous configures the magic-wormhole mailbox server and transit
// relay (see wormhole/mailbox and wormhole/transitrelay).
type Rendezvous struct {
	// Listen is the "IP:PORT" (or "IP", port 4000) of the mailbox
	// server, ws://HOST:PORT/v1; "off" turns the rendezvous off,
	// transit relay included.
	Listen string `yaml:"listen"`
	// TLSListen is where it serves wss:// when tls.cert is set; "off"
	// for none.
	TLSListen string `yaml:"tls_listen"`
	// TransitListen is the transit relay's "IP:PORT"; "off" for none.
	TransitListen string `yaml:"transit_listen"`
	// DB is the SQLite file of the mailboxes ("" = rendezvous.db beside
	// the default user store, "none" = memory only).
	DB   string `yaml:"db"`
	MOTD string `yaml:"motd"`
	// Disabled, when set, is the error every client's welcome carries
	// (e.g. "moved to ws://new.example.org:4000/v1"); the mailbox then
	// serves nothing.
	Disabled string `yaml:"disabled"`
	// PublicHost is the host put in the ICE server URIs; "" uses the
	// host the client connected to.
	PublicHost string `yaml:"public_host"`
	// ClientIPHeader is the header a trusted reverse proxy sets to the
	// client's address; "" uses the TCP peer.
	ClientIPHeader string `yaml:"client_ip_header"`
	// ICEServers configures the icebreaker-ice-servers command.
	ICEServers ICEServers `yaml:"ice_servers"`
	// TestPage configures the browser page that gathers ICE candidates
	// against this server; off unless enabled.
	TestPage TestPage         `yaml:"test_page"`
	Limits   RendezvousLimits `yaml:"limits"`
	Transit  TransitLimits    `yaml:"transit"`
}

// ICEServers configures the hand-out of STUN and TURN URIs with ephemeral
// TURN REST credentials to bound clients. It is offered only when TURN is
// on and turn.rest_secrets is set.
type ICEServers struct {
	Enabled bool          `yaml:"enabled"`
	Token   string        `yaml:"token"` // "" = no token required
	TTL     time.Duration `yaml:"ttl"`
}

// MinTestPageToken is the shortest rendezvous.test_page.token accepted:
// the token is all that stands between the page and anyone who can reach
// the rendezvous, and the page mints TURN credentials.
const MinTestPageToken = 16

// TestPage configures the ICE test page (internal/icepage), served on the
// rendezvous listeners at /ice-test: a browser gathers ICE candidates with
// this server's STUN and TURN URIs and ephemeral TURN REST credentials. It
// needs the rendezvous, TURN and turn.rest_secrets.
type TestPage struct {
	Enabled bool `yaml:"enabled"`
	// Token is what the page and its credential endpoint require (the
	// token query parameter or an "Authorization: Bearer" header); at
	// least MinTestPageToken characters when Enabled.
	Token string `yaml:"token"`
}

// RendezvousLimits are the mailbox server's limits; each must be positive.
type RendezvousLimits struct {
	MessageSize        int           `yaml:"message_size"`
	MessagesPerMailbox int           `yaml:"messages_per_mailbox"`
	MailboxBytes       int           `yaml:"mailbox_bytes"`
	Mailboxes          int           `yaml:"mailboxes"`
	MailboxesPerIP     int           `yaml:"mailboxes_per_ip"`
	ConnsPerIP         int           `yaml:"conns_per_ip"`
	Rate               int           `yaml:"rate"`
	Burst              int           `yaml:"burst"`
	PruneAfter         time.Duration `yaml:"prune_after"`
}

// TransitLimits are the transit relay's limits; each must be positive.
type TransitLimits struct {
	MaxWait      time.Duration `yaml:"max_wait"`
	BytesPerPair int           `yaml:"bytes_per_pair"`
	MaxDuration  time.Duration `yaml:"max_duration"`
	ConnsPerIP   int           `yaml:"conns_per_ip"`
}

func defaultRendezvous() Rendezvous {
	return Rendezvous{
		Listen:        "0.0.0.0:4000",
		TLSListen:     "0.0.0.0:4443",
		TransitListen: "0.0.0.0:4001",
		ICEServers:    ICEServers{Enabled: true, TTL: 300 * time.Second},
		Limits: RendezvousLimits{MessageSize: 65536, MessagesPerMailbox: 1000, MailboxBytes: 1048576, Mailboxes: 100000,
			MailboxesPerIP: 32, ConnsPerIP: 64, Rate: 50, Burst: 200, PruneAfter: 11 * time.Minute},
		Transit: TransitLimits{MaxWait: 2 * time.Minute, BytesPerPair: 4 << 30, MaxDuration: 2 * time.Hour, ConnsPerIP: 32},
	}
}

// RendezvousAddrs returns the parsed mailbox, wss:// and transit relay
// addresses; an address is zero when its service is off (the rendezvous
// off, TLS not configured). Call after Validate.
func (c Config) RendezvousAddrs() (ws, wss, transit netip.AddrPort) {
	r := c.Rendezvous
	if r.Listen == Off {
		return
	}
	ws, _ = ParseListen(r.Listen, DefaultRendezvousPort)
	if c.TLS.Enabled() && r.TLSListen != Off {
		wss, _ = ParseListen(r.TLSListen, DefaultRendezvousTLSPort)
	}
	if r.TransitListen != Off {
		transit, _ = ParseListen(r.TransitListen, DefaultTransitPort)
	}
	return
}

func (r Rendezvous) validate() *Error {
	for _, a := range []struct {
		key, v string
		def    uint16
	}{{"rendezvous.listen", r.Listen, DefaultRendezvousPort}, {"rendezvous.tls_listen", r.TLSListen, DefaultRendezvousTLSPort},
		{"rendezvous.transit_listen", r.TransitListen, DefaultTransitPort}} {
		if a.v == Off {
			continue
		}
		ap, err := ParseListen(a.v, a.def)
		if err != nil {
			return keyErr(a.key, "%v, or \"off\"", err)
		}
		if ap.Addr().IsMulticast() {
			return keyErr(a.key, "%v is a multicast address", ap.Addr())
		}
	}
	if strings.ContainsAny(r.PublicHost, "/?#@[] \t") && !isBracketedIPv6(r.PublicHost) {
		return keyErr("rendezvous.public_host", "%q is not a host name or IP address", r.PublicHost)
	}
	if r.ICEServers.TTL < time.Second {
		return keyErr("rendezvous.ice_servers.ttl", "%v is shorter than one second", r.ICEServers.TTL)
	}
	if p := r.TestPage; p.Enabled {
		switch {
		case p.Token == "":
			return keyErr("rendezvous.test_page.token", "must be set when rendezvous.test_page.enabled is true (the page mints TURN credentials for whoever has it)")
		case len(p.Token) < MinTestPageToken:
			return keyErr("rendezvous.test_page.token", "is %d characters long; use at least %d (for example the output of `openssl rand -hex 16`)", len(p.Token), MinTestPageToken)
		case strings.ContainsAny(p.Token, " \t\r\n"):
			return keyErr("rendezvous.test_page.token", "contains white space")
		case r.Listen == Off:
			return keyErr("rendezvous.test_page.enabled", "the page is served on rendezvous.listen, which is \"off\"")
		}
	}
	l := r.Limits
	for _, v := range []struct {
		key string
		v   int
	}{{"rendezvous.limits.message_size", l.MessageSize}, {"rendezvous.limits.messages_per_mailbox", l.MessagesPerMailbox},
		{"rendezvous.limits.mailbox_bytes", l.MailboxBytes}, {"rendezvous.limits.mailboxes", l.Mailboxes},
		{"rendezvous.limits.mailboxes_per_ip", l.MailboxesPerIP}, {"rendezvous.limits.conns_per_ip", l.ConnsPerIP},
		{"rendezvous.limits.rate", l.Rate}, {"rendezvous.limits.burst", l.Burst},
		{"rendezvous.transit.bytes_per_pair", r.Transit.BytesPerPair}, {"rendezvous.transit.conns_per_ip", r.Transit.ConnsPerIP}} {
		if v.v < 1 {
			return keyErr(v.key, "%d must be at least 1", v.v)
		}
	}
	if l.MessageSize > 16<<20 {
		return keyErr("rendezvous.limits.message_size", "%d is above 16 MiB", l.MessageSize)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"rendezvous.limits.prune_after", l.PruneAfter}, {"rendezvous.transit.max_wait", r.Transit.MaxWait},
		{"rendezvous.transit.max_duration", r.Transit.MaxDuration}} {
		if d.v < time.Second {
			return keyErr(d.key, "%v is shorter than one second", d.v)
		}
	}
	return nil
}

// validateTestPage checks what the test page needs outside the rendezvous
// section: TURN with a REST secret to mint its credentials.
func (c Config) validateTestPage() *Error {
	if c.Rendezvous.TestPage.Enabled && (!c.TURN.Enabled || len(c.TURN.RESTSecrets) == 0) {
		return keyErr("rendezvous.test_page.enabled", "the page mints TURN REST credentials: it needs turn.enabled and turn.rest_secrets (or --rest-secret)")
	}
	return nil
}

func isBracketedIPv6(s string) bool {
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	return err == nil && a.Is6() && strings.HasPrefix(s, "[")
}
