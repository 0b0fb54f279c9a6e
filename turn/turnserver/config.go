package turnserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// Defaults applied to zero Config fields. RFC 8656, Sections 3.2, 7.2, 9
// and 12.
const (
	DefaultLifetime           = 600 * time.Second
	DefaultMaxLifetime        = 3600 * time.Second
	DefaultPermissionLifetime = 300 * time.Second
	DefaultChannelLifetime    = 600 * time.Second
	DefaultPortMin            = 49152
	DefaultPortMax            = 65535
	DefaultAllocationsPerUser = 10
	// DefaultPermissionsPerAllocation is enough for an SFU or a mesh call
	// (eturnal's 10 is not) and keeps CreatePermission and the janitor's
	// work per allocation bounded.
	DefaultPermissionsPerAllocation = 128
	// RFC 6062 bounds: Connects still dialling per allocation and per
	// user, and peer connections per TCP allocation.
	DefaultConnectsPerAllocation       = 8
	DefaultConnectsPerUser             = 32
	DefaultTCPConnectionsPerAllocation = 64
	// ReservationLifetime is how long a port reserved by EVEN-PORT with
	// the R bit is held for its RESERVATION-TOKEN (RFC 8656, Section 7.2:
	// at least 30 seconds).
	ReservationLifetime = 30 * time.Second
)

// Authenticator is the long-term credential check of RFC 8489, Section
// 9.2.4, as *turnauth.Authenticator implements it. Tests may inject their
// own. Both methods must be safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, m *stun.Message, from turnauth.Client, now time.Time) (turnauth.Result, *turnauth.Challenge)
	AppendChallenge(b []byte, c *turnauth.Challenge, from turnauth.Client, now time.Time) []byte
}

// PeerPolicy decides which peers the relay may reach, as *policy.Policy
// implements it. Allowed runs per Send indication and must allocate
// nothing; Check explains a denial. Both must be safe for concurrent use.
type PeerPolicy interface {
	Allowed(peer netip.AddrPort) bool
	Check(peer netip.AddrPort) error
}

// PortRange is the inclusive range of relay ports.
type PortRange struct {
	Min, Max uint16
}

// Quotas are the limits enforced per user and per server. Zero means the
// documented default.
type Quotas struct {
	// AllocationsPerUser bounds the allocations one username holds at
	// once; more get 486 (Allocation Quota Reached). 0 means
	// DefaultAllocationsPerUser; negative means unlimited.
	AllocationsPerUser int
	// TotalAllocations bounds the allocations of the whole server; more
	// get 508 (Insufficient Capacity). 0 means unlimited.
	TotalAllocations int
	// BandwidthPerAllocation and BandwidthPerUser bound the relayed
	// bytes per second, both directions together, with a token bucket
	// that holds one second's worth. Packets beyond it are dropped and
	// counted in Stats.DroppedQuota. 0 means unlimited.
	BandwidthPerAllocation int64
	BandwidthPerUser       int64
	// PermissionsPerAllocation bounds the permissions of one allocation
	// (CreatePermission and ChannelBind install them); a request that
	// would pass it gets 508 and installs nothing. 0 means
	// DefaultPermissionsPerAllocation; negative means unlimited.
	PermissionsPerAllocation int
	// ConnectsPerAllocation bounds the RFC 6062 Connects of one
	// allocation still dialling their peer (each holds a socket for up to
	// 30 s); more get 508. 0 means DefaultConnectsPerAllocation; negative
	// means unlimited.
	ConnectsPerAllocation int
	// ConnectsPerUser bounds the Connects still dialling of all of one
	// user's allocations; more get 486. 0 means DefaultConnectsPerUser;
	// negative means unlimited.
	ConnectsPerUser int
	// TCPConnectionsPerAllocation bounds the peer connections of one TCP
	// allocation, dialled or accepted, waiting or spliced; a Connect past
	// it gets 508, an incoming peer is closed at once. 0 means
	// DefaultTCPConnectionsPerAllocation; negative means unlimited.
	TCPConnectionsPerAllocation int
	// Descriptors is the budget of descriptors the server holds: relay
	// sockets, reserved ports, TCP relay listeners, peer and spliced
	// client data connections. What would pass it is refused with 508, so
	// that the listeners keep descriptors to accept clients with. 0 means
	// DescriptorBudget(DefaultDescriptorReserve), from the process's
	// open-file limit; negative means unlimited.
	Descriptors int
}

// Config configures a Server. The zero value of a field means its
// documented default, except Auth, Policy and at least one relay address,
// which are required. New copies the Config.
type Config struct {
	// Auth authenticates every request (RFC 8656, Section 5). Required.
	Auth Authenticator
	// Policy judges peer addresses on CreatePermission, ChannelBind,
	// Connect and every Send indication (403 or a dropped packet).
	// Required: use turn/policy for the deny-by-default policy, with the
	// listener addresses as its own addresses. Relayed addresses are
	// deliberately not own addresses: two clients of one server talk to
	// each other through their relays (both sides relayed, as ICE does
	// when both peers need TURN, and turnutils_uclient -y).
	Policy PeerPolicy

	// RelayIPv4 and RelayIPv6 are the addresses relay sockets bind to; an
	// invalid (zero) address disables that family (RFC 8656, Section 7.2:
	// 440 Address Family not Supported). An unspecified address (0.0.0.0,
	// ::) needs the matching External address.
	RelayIPv4, RelayIPv6 netip.Addr
	// ExternalIPv4 and ExternalIPv6 are the addresses to advertise in
	// XOR-RELAYED-ADDRESS when the relay sits behind a 1:1 NAT (coturn's
	// external-ip). Zero advertises the relay address itself.
	ExternalIPv4, ExternalIPv6 netip.Addr
	// PortRange is where relay ports come from. Zero means 49152-65535
	// (RFC 8656, Section 7.2).
	PortRange PortRange

	// DefaultLifetime, MaxLifetime: an allocation lives
	// max(DefaultLifetime, min(requested, MaxLifetime)) (RFC 8656,
	// Section 7.2). Defaults 600 s and 3600 s.
	DefaultLifetime, MaxLifetime time.Duration
	// PermissionLifetime (RFC 8656, Section 9: 300 s) and
	// ChannelLifetime (Section 12: 600 s). Change them only in tests.
	PermissionLifetime, ChannelLifetime time.Duration
	// LooseChannels accepts channel numbers 0x5000-0x7FFF as well, as
	// RFC 5766 did and coturn's turnutils_uclient still uses.
	LooseChannels bool

	Quotas Quotas
	// OverflowAlternates are sibling servers (their TURN listener, same
	// transport) that an Allocate refused for TotalAllocations is sent to
	// with 300 (Try Alternate) and ALTERNATE-SERVER instead of 508: the
	// first of the client's address family (RFC 8656, Section 7.2;
	// RFC 8489, Section 10). None of its family: 508 as before.
	OverflowAlternates []netip.AddrPort

	// Software is the SOFTWARE attribute of every response; "" (the
	// default) sends none.
	Software string
	// ErrorLimiter, when set, bounds the error responses to
	// unauthenticated requests (401, 438, 400) per source address: past
	// its rate such requests get no answer, so the server is a poor
	// reflector for spoofed requests (RFC 8489, Section 16.1.2 names the
	// amplification risk). nil answers every request.
	ErrorLimiter *iplimit.Limiter
	// Logger receives allocation lifecycle events at debug level and
	// errors; never per-packet events. nil is silent.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now. Tests inject a
	// fake clock and drive expiry with it.
	Clock func() time.Time
}

// Validate reports every invalid field, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("turnserver: config %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Auth == nil {
		bad("Auth", "required: TURN requests must be authenticated")
	}
	if c.Policy == nil {
		bad("Policy", "required (turn/policy gives the deny-by-default policy)")
	}
	if !c.RelayIPv4.IsValid() && !c.RelayIPv6.IsValid() {
		bad("RelayIPv4", "no relay address: set RelayIPv4, RelayIPv6 or both")
	}
	checkRelay := func(name string, relay, ext netip.Addr, want4 bool) {
		if relay.IsValid() {
			if relay.Unmap().Is4() != want4 || relay.Zone() != "" {
				bad(name, "%v is not a plain %s address", relay, map[bool]string{true: "IPv4", false: "IPv6"}[want4])
			}
			if relay.IsMulticast() {
				bad(name, "%v is a multicast address", relay)
			}
			if relay.IsUnspecified() && !ext.IsValid() {
				bad(name, "%v is unspecified: set the External address to advertise", relay)
			}
		}
		if ext.IsValid() {
			if !relay.IsValid() {
				bad("External"+name[len("Relay"):], "set without %s", name)
			}
			if ext.Unmap().Is4() != want4 || ext.IsUnspecified() || ext.IsMulticast() {
				bad("External"+name[len("Relay"):], "%v is not a unicast address of the relay's family", ext)
			}
		}
	}
	checkRelay("RelayIPv4", c.RelayIPv4, c.ExternalIPv4, true)
	checkRelay("RelayIPv6", c.RelayIPv6, c.ExternalIPv6, false)
	if c.PortRange != (PortRange{}) && (c.PortRange.Min == 0 || c.PortRange.Min > c.PortRange.Max) {
		bad("PortRange", "%d-%d is not a range of non-zero ports", c.PortRange.Min, c.PortRange.Max)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DefaultLifetime", c.DefaultLifetime}, {"MaxLifetime", c.MaxLifetime},
		{"PermissionLifetime", c.PermissionLifetime}, {"ChannelLifetime", c.ChannelLifetime}} {
		if d.v < 0 || d.v%time.Second != 0 {
			bad(d.name, "%v is not a non-negative whole number of seconds", d.v)
		}
	}
	def, mx := c.DefaultLifetime, c.MaxLifetime
	if def == 0 {
		def = DefaultLifetime
	}
	if mx == 0 {
		mx = DefaultMaxLifetime
	}
	if def > mx {
		bad("MaxLifetime", "%v is shorter than DefaultLifetime %v", mx, def)
	}
	for i, a := range c.OverflowAlternates {
		if !a.IsValid() || a.Port() == 0 || a.Addr().IsUnspecified() {
			bad(fmt.Sprintf("OverflowAlternates[%d]", i), "%v is not a usable IP:PORT", a)
		}
	}
	if c.Quotas.TotalAllocations < 0 {
		bad("Quotas.TotalAllocations", "negative (%d)", c.Quotas.TotalAllocations)
	}
	if c.Quotas.BandwidthPerAllocation < 0 || c.Quotas.BandwidthPerUser < 0 {
		bad("Quotas", "negative bandwidth")
	}
	if len(c.Software) > stun.MaxSoftware || !utf8.ValidString(c.Software) || utf8.RuneCountInString(c.Software) >= 128 {
		bad("Software", "must be valid UTF-8, under 128 characters and at most %d bytes", stun.MaxSoftware)
	}
	return errors.Join(errs...)
}

// withDefaults returns the copy New works from.
func (c Config) withDefaults() Config {
	c.RelayIPv4, c.ExternalIPv4 = c.RelayIPv4.Unmap(), c.ExternalIPv4.Unmap()
	if c.PortRange == (PortRange{}) {
		c.PortRange = PortRange{DefaultPortMin, DefaultPortMax}
	}
	if c.DefaultLifetime == 0 {
		c.DefaultLifetime = DefaultLifetime
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.PermissionLifetime == 0 {
		c.PermissionLifetime = DefaultPermissionLifetime
	}
	if c.ChannelLifetime == 0 {
		c.ChannelLifetime = DefaultChannelLifetime
	}
	if c.Quotas.AllocationsPerUser == 0 {
		c.Quotas.AllocationsPerUser = DefaultAllocationsPerUser
	}
	q := &c.Quotas
	for _, v := range []struct {
		p   *int
		def int
	}{{&q.PermissionsPerAllocation, DefaultPermissionsPerAllocation}, {&q.ConnectsPerAllocation, DefaultConnectsPerAllocation},
		{&q.ConnectsPerUser, DefaultConnectsPerUser}, {&q.TCPConnectionsPerAllocation, DefaultTCPConnectionsPerAllocation}} {
		if *v.p == 0 {
			*v.p = v.def
		}
	}
	if q.Descriptors == 0 {
		q.Descriptors = DescriptorBudget(DefaultDescriptorReserve)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// lifetime computes an allocation's time-to-expiry from the requested
// LIFETIME: max(default, min(requested, max)). RFC 8656, Sections 7.2
// and 8.2.
func (c *Config) lifetime(requested time.Duration, present bool) time.Duration {
	if !present {
		return c.DefaultLifetime
	}
	return max(c.DefaultLifetime, min(requested, c.MaxLifetime))
}
