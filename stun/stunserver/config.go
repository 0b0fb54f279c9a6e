package stunserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"time"
	"unicode/utf8"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
)

// Defaults applied to zero Config fields.
const (
	DefaultTCPIdleTimeout = 30 * time.Second
	DefaultMaxTCPConns    = 10000
	// DefaultMessageTimeout is the default of Config.MessageTimeout.
	DefaultMessageTimeout = 10 * time.Second
	// DefaultMaxReadBuffers is the default of Config.MaxReadBuffers.
	DefaultMaxReadBuffers = 64 << 20
	// MaxUDPSockets bounds Config.UDPSockets.
	MaxUDPSockets = 1024
)

// MaxMessageSize is the largest request the server reads, over UDP and over
// TCP. It leaves room for RFC 5780 PADDING up to a 4000-byte MTU; a longer
// datagram is counted as malformed, and a TCP peer that announces a longer
// message loses its connection.
const MaxMessageSize = 4096

// Config configures a Server. The zero value of every field means the
// documented default; Listen copies the Config, so changing it afterwards
// has no effect.
type Config struct {
	// UDP, TCP and TLS are the listen addresses; the zero AddrPort
	// disables that transport. Port 0 picks a free port (see
	// Server.Addrs). IPv4-mapped IPv6 addresses are treated as IPv4; the
	// unspecified IPv6 address [::] listens dual-stack.
	UDP, TCP, TLS netip.AddrPort
	// TLSConfig is required when TLS is set and must provide a
	// certificate. It is cloned.
	TLSConfig *tls.Config

	// AlternateIP enables RFC 5780 (Section 6): UDP must then be a
	// specific address IP1:P1 of the same family, and the server also
	// listens on IP1:P2, IP2:P1 and IP2:P2, where IP2 is AlternateIP and
	// P2 is AlternatePort, or P1+1 when that is 0.
	AlternateIP   netip.Addr
	AlternatePort uint16

	// Software is the SOFTWARE attribute of every response (RFC 8489,
	// Section 14.14); "" sends none. At most 763 bytes and 127
	// characters.
	Software string

	// UDPSockets is how many SO_REUSEPORT sockets serve each UDP address,
	// each read by its own goroutine. 0 means runtime.NumCPU() (1 where
	// SO_REUSEPORT is unavailable).
	UDPSockets int
	// TCPIdleTimeout closes a TCP or TLS connection that sends nothing
	// for this long, and bounds the TLS handshake and every write. 0
	// means DefaultTCPIdleTimeout.
	TCPIdleTimeout time.Duration
	// MaxTCPConns bounds the open TCP and TLS connections together;
	// further connections are closed at once and counted in
	// Stats.TCPRejected. 0 means DefaultMaxTCPConns.
	MaxTCPConns int
	// PerIP, if set, bounds what one client address (an IPv6 client: its
	// prefix, see iplimit) does on the TCP and TLS listeners: the
	// connections it holds at once (the Limiter's MaxConns; further ones
	// are closed at once and counted in Stats.TCPPerIPRejected), and the
	// TLS handshakes it starts per second (its Rate; further ones are
	// closed before the handshake and counted in
	// Stats.TLSHandshakesRefused). Servers that share one Limiter (one
	// per listen address) share the bound. nil limits nothing per
	// address.
	PerIP *iplimit.Limiter
	// MessageTimeout bounds how long one message may take to arrive over
	// TCP or TLS, from its first byte to its last, also on a connection
	// that a Handler keeps open: a peer that trickles a message is
	// closed (Stats.TCPMessageTimeouts), however often it sends a byte.
	// It also bounds the TLS handshake. 0 means DefaultMessageTimeout.
	MessageTimeout time.Duration
	// MaxReadBuffers bounds the bytes of read buffers that the TCP and
	// TLS connections hold together beyond the first kilobyte each: a
	// message longer than that needs a buffer of the message's class
	// (4 KiB for STUN, 64 KiB for an OtherHandler's frame) while it is
	// read, and a connection that needs one when the budget is spent is
	// closed (Stats.TCPBufferRefused). 0 means DefaultMaxReadBuffers.
	MaxReadBuffers int

	// Handler answers requests and indications of methods other than
	// Binding. nil: such requests get 400 and such indications are
	// dropped.
	Handler Handler

	// Logger receives start, stop and per-connection events, never
	// per-packet ones. nil is silent.
	Logger *slog.Logger
}

// ConfigError is a Config field with an invalid value. Validate and
// Listen return errors that unwrap to it, with errors.As.
type ConfigError struct {
	Field  string // the Config field, e.g. "AlternateIP"
	Reason string
}

func (e *ConfigError) Error() string {
	return "stunserver: config " + e.Field + ": " + e.Reason
}

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports every invalid field, joined (errors.Join); each is a
// *ConfigError.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	c = c.unmapped()
	enabled := 0
	for _, f := range []struct {
		name string
		ap   netip.AddrPort
	}{{"UDP", c.UDP}, {"TCP", c.TCP}, {"TLS", c.TLS}} {
		if f.ap == (netip.AddrPort{}) {
			continue
		}
		enabled++
		if !f.ap.Addr().IsValid() {
			add(cfgErr(f.name, "port %d without an IP address (use 0.0.0.0 or [::] for all)", f.ap.Port()))
		} else if f.ap.Addr().IsMulticast() {
			add(cfgErr(f.name, "%v is a multicast address", f.ap.Addr()))
		}
	}
	if enabled == 0 {
		add(cfgErr("UDP", "no listen address: set at least one of UDP, TCP and TLS"))
	}
	if c.TLS.IsValid() {
		switch {
		case c.TLSConfig == nil:
			add(cfgErr("TLSConfig", "required when TLS is set"))
		case len(c.TLSConfig.Certificates) == 0 && c.TLSConfig.GetCertificate == nil && c.TLSConfig.GetConfigForClient == nil:
			add(cfgErr("TLSConfig", "has no certificate"))
		}
		if c.TCP == c.TLS && c.TLS.Port() != 0 {
			add(cfgErr("TLS", "same address as TCP (%v); RFC 5780, Section 6 and RFC 8489 use separate ports", c.TLS))
		}
	}
	if c.AlternateIP.IsValid() {
		a, u := c.AlternateIP, c.UDP.Addr()
		switch {
		case !c.UDP.IsValid():
			add(cfgErr("AlternateIP", "RFC 5780 needs a UDP address"))
		case u.IsUnspecified():
			add(cfgErr("UDP", "must be a specific address when AlternateIP is set, not %v", u))
		case a.Is4() != u.Is4():
			add(cfgErr("AlternateIP", "%v and UDP address %v are of different families", a, u))
		case a == u:
			add(cfgErr("AlternateIP", "%v is the UDP address itself", a))
		}
		if a.IsUnspecified() || a.IsMulticast() {
			add(cfgErr("AlternateIP", "%v is not a unicast address", a))
		}
		if c.AlternatePort != 0 && c.AlternatePort == c.UDP.Port() {
			add(cfgErr("AlternatePort", "%d is the UDP port itself", c.AlternatePort))
		}
	} else if c.AlternatePort != 0 {
		add(cfgErr("AlternatePort", "needs AlternateIP"))
	}
	if len(c.Software) > stun.MaxSoftware || !utf8.ValidString(c.Software) || utf8.RuneCountInString(c.Software) >= 128 {
		add(cfgErr("Software", "must be valid UTF-8, under 128 characters and at most %d bytes (RFC 8489, Section 14.14)", stun.MaxSoftware))
	}
	if c.UDPSockets < 0 || c.UDPSockets > MaxUDPSockets {
		add(cfgErr("UDPSockets", "%d is outside 0-%d", c.UDPSockets, MaxUDPSockets))
	}
	if c.UDPSockets > 1 && !udpio.ReusePortSupported {
		add(cfgErr("UDPSockets", "more than one socket needs SO_REUSEPORT, which this platform lacks"))
	}
	if c.TCPIdleTimeout < 0 {
		add(cfgErr("TCPIdleTimeout", "negative (%v)", c.TCPIdleTimeout))
	}
	if c.MaxTCPConns < 0 {
		add(cfgErr("MaxTCPConns", "negative (%d)", c.MaxTCPConns))
	}
	if c.MessageTimeout < 0 {
		add(cfgErr("MessageTimeout", "negative (%v)", c.MessageTimeout))
	}
	if c.MaxReadBuffers < 0 {
		add(cfgErr("MaxReadBuffers", "negative (%d)", c.MaxReadBuffers))
	}
	return errors.Join(errs...)
}

// unmapped returns c with IPv4-mapped addresses written as IPv4.
func (c Config) unmapped() Config {
	c.UDP, c.TCP, c.TLS = netx.Unmap(c.UDP), netx.Unmap(c.TCP), netx.Unmap(c.TLS)
	c.AlternateIP = c.AlternateIP.Unmap()
	return c
}

// withDefaults returns the normalised copy Listen works from.
func (c Config) withDefaults() Config {
	c = c.unmapped()
	if c.UDPSockets == 0 {
		c.UDPSockets = 1
		if udpio.ReusePortSupported {
			c.UDPSockets = runtime.NumCPU()
		}
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.MessageTimeout == 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.MaxReadBuffers == 0 {
		c.MaxReadBuffers = DefaultMaxReadBuffers
	}
	if c.TLSConfig != nil {
		c.TLSConfig = c.TLSConfig.Clone()
		// RFC 8489, Section 6.2.3: TLS 1.2 or later.
		c.TLSConfig.MinVersion = max(c.TLSConfig.MinVersion, tls.VersionTLS12)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Endpoint is one socket address the server listens on.
type Endpoint struct {
	Network string         // "udp", "tcp" or "tls"
	Addr    netip.AddrPort // the bound address, with the port actually bound
	Role    string         // RolePrimary, RoleAltPort, RoleAltIP or RoleAltBoth
}

// Endpoint roles. Without RFC 5780 every endpoint is RolePrimary.
const (
	RolePrimary = "primary"  // IP1:P1
	RoleAltPort = "alt-port" // IP1:P2
	RoleAltIP   = "alt-ip"   // IP2:P1
	RoleAltBoth = "alt-both" // IP2:P2, the address OTHER-ADDRESS names
)
