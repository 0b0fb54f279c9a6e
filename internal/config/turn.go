package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// TURN configures the TURN relay (RFC 8656, RFC 6062), served on the same
// listeners as STUN.
type TURN struct {
	Enabled bool   `yaml:"enabled"`
	Realm   string `yaml:"realm"`
	// Users are static long-term credential users, on top of the user
	// store.
	Users []User `yaml:"users"`
	// UserDB is the user store: an SQLite file ("" = its default path,
	// "none" = no store) or a postgres:// URL (internal/userstore).
	UserDB string `yaml:"user_db"`
	// RESTSecrets enable TURN REST API credentials: the first signs, all
	// verify.
	RESTSecrets []string `yaml:"rest_secrets"`
	// NonceSecret is the HMAC key of the stateless nonces ("" = random per
	// start), at least 16 bytes.
	NonceSecret string        `yaml:"nonce_secret"`
	NonceTTL    time.Duration `yaml:"nonce_ttl"`
	// RelayIP lists the relay bind addresses, at most one IPv4 and one
	// IPv6; empty means derived from the listen addresses.
	RelayIP []string `yaml:"relay_ip"`
	// ExternalIP lists "PUBLIC" or "PUBLIC/PRIVATE" mappings for a relay
	// behind a 1:1 NAT, at most one per family.
	ExternalIP    []string `yaml:"external_ip"`
	RelayPorts    string   `yaml:"relay_ports"` // "MIN-MAX"
	Lifetime      Lifetime `yaml:"lifetime"`
	LooseChannels bool     `yaml:"loose_channels"`
	Policy        Policy   `yaml:"policy"`
	Quotas        Quotas   `yaml:"quotas"`
}

// User is a static TURN user.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Lifetime bounds allocation lifetimes (RFC 8656, Section 7.2).
type Lifetime struct {
	Default time.Duration `yaml:"default"`
	Max     time.Duration `yaml:"max"`
}

// Policy holds the operator's peer address exceptions (CIDRs or bare IPs)
// on top of the built-in denials of turn/policy.
type Policy struct {
	AllowPeers []string `yaml:"allow_peers"`
	DenyPeers  []string `yaml:"deny_peers"`
}

// Quotas are the TURN limits. Zero or "" means unlimited.
type Quotas struct {
	AllocationsPerUser       int    `yaml:"allocations_per_user"`
	TotalAllocations         int    `yaml:"total_allocations"`
	BandwidthPerAllocation   string `yaml:"bandwidth_per_allocation"` // e.g. "1MB/s", "10Mbit/s"
	BandwidthPerUser         string `yaml:"bandwidth_per_user"`
	PermissionsPerAllocation int    `yaml:"permissions_per_allocation"`
	// ErrorRatePerIP is how many error answers to unauthenticated
	// requests one source address gets per second (a burst of twice
	// that); 0 means unlimited.
	ErrorRatePerIP int `yaml:"error_rate_per_ip"`
	// RFC 6062 bounds and the descriptor budget (0 = derived from the
	// open-file limit).
	ConnectsPerAllocation       int `yaml:"connects_per_allocation"`
	ConnectsPerUser             int `yaml:"connects_per_user"`
	TCPConnectionsPerAllocation int `yaml:"tcp_connections_per_allocation"`
	Descriptors                 int `yaml:"descriptors"`
	// OverflowAlternates are sibling nodes ("IP:PORT" of their TURN
	// listener) that an Allocate over TotalAllocations is redirected to
	// with 300 ALTERNATE-SERVER instead of 508; empty means 508.
	OverflowAlternates []string `yaml:"overflow_alternates"`
}

// Alternates returns OverflowAlternates parsed; call it on a validated
// configuration.
func (q Quotas) Alternates() []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range q.OverflowAlternates {
		if a, err := parseAlternate(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// parseAlternate parses one turn.quotas.overflow_alternates entry: a
// literal IP (no name: nothing is resolved) with a port, not unspecified.
func parseAlternate(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return a, fmt.Errorf("%q is not IP:PORT", s)
	case a.Port() == 0 || a.Addr().IsUnspecified() || a.Addr().Zone() != "":
		return a, fmt.Errorf("%q is not an address a client can be sent to", s)
	}
	return netx.Unmap(a), nil
}

// NoUserDB is the UserDB value that turns the user store off.
const NoUserDB = "none"

// StaticUsers returns the configured users as username → password.
func (t TURN) StaticUsers() map[string]string {
	m := make(map[string]string, len(t.Users))
	for _, u := range t.Users {
		m[u.Username] = u.Password
	}
	return m
}

// RelayAddrs returns the configured relay bind addresses by family (the
// zero Addr where none is set), taking the PRIVATE part of an
// "PUBLIC/PRIVATE" external_ip when relay_ip gives none for that family.
// Call after Validate.
func (t TURN) RelayAddrs() (v4, v6 netip.Addr) {
	for _, s := range t.RelayIP {
		a, _ := netip.ParseAddr(s)
		setFamily(&v4, &v6, a.Unmap())
	}
	for _, s := range t.ExternalIP {
		_, priv, _ := parseExternal(s)
		if priv.IsValid() {
			if priv.Is4() && !v4.IsValid() {
				v4 = priv
			} else if priv.Is6() && !v6.IsValid() {
				v6 = priv
			}
		}
	}
	return v4, v6
}

// ExternalAddrs returns the public relay address to advertise per family
// (the zero Addr where none is set). Call after Validate.
func (t TURN) ExternalAddrs() (v4, v6 netip.Addr) {
	for _, s := range t.ExternalIP {
		pub, _, _ := parseExternal(s)
		setFamily(&v4, &v6, pub)
	}
	return v4, v6
}

func setFamily(v4, v6 *netip.Addr, a netip.Addr) {
	if a.Is4() {
		*v4 = a
	} else if a.IsValid() {
		*v6 = a
	}
}

// parseExternal parses "PUBLIC" or "PUBLIC/PRIVATE" (coturn's
// external-ip). priv is the zero Addr without "/PRIVATE".
func parseExternal(s string) (pub, priv netip.Addr, err error) {
	p, q, mapped := strings.Cut(s, "/")
	if pub, err = netip.ParseAddr(p); err != nil {
		return pub, priv, fmt.Errorf("%q is not an IP address or PUBLIC/PRIVATE pair", s)
	}
	pub = pub.Unmap()
	if mapped {
		if priv, err = netip.ParseAddr(q); err != nil {
			return pub, priv, fmt.Errorf("%q: the private part %q is not an IP address", s, q)
		}
		priv = priv.Unmap()
	}
	return pub, priv, nil
}

// PortRange returns the parsed RelayPorts; call after Validate.
func (t TURN) PortRange() (lo, hi uint16) {
	lo, hi, _ = parsePortRange(t.RelayPorts)
	return lo, hi
}

func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(s, "-")
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("%q is not a port range MIN-MAX, such as \"49152-65535\"", s)
	case x == 0 || x > y:
		return 0, 0, fmt.Errorf("%q is not a range of ports 1-65535 with MIN <= MAX", s)
	}
	return uint16(x), uint16(y), nil
}

// AllowPrefixes and DenyPrefixes return the parsed Policy lists, a bare IP
// as a single-address prefix; call after Validate.
func (p Policy) AllowPrefixes() []netip.Prefix { return prefixes(p.AllowPeers) }

// DenyPrefixes: see AllowPrefixes.
func (p Policy) DenyPrefixes() []netip.Prefix { return prefixes(p.DenyPeers) }

func prefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		p, _ := parsePrefix(s)
		out = append(out, p)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p != p.Masked() {
			return p, fmt.Errorf("%q has host bits set: write %v", s, p.Masked())
		}
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (such as 192.0.2.0/24) or an IP address", s)
}

// Bandwidth returns the quotas in bytes per second, 0 for unlimited; call
// after Validate.
func (q Quotas) Bandwidth() (perAllocation, perUser int64) {
	perAllocation, _ = ParseBandwidth(q.BandwidthPerAllocation)
	perUser, _ = ParseBandwidth(q.BandwidthPerUser)
	return perAllocation, perUser
}

// bandwidthUnits maps a unit to bytes per second. Bytes are "B", bits are
// "bit" or "bps"; k, M, G are powers of 1000 and Ki, Mi, Gi of 1024.
var bandwidthUnits = map[string]float64{
	"B/s": 1, "kB/s": 1e3, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9,
	"KiB/s": 1 << 10, "MiB/s": 1 << 20, "GiB/s": 1 << 30,
	"bit/s": 1.0 / 8, "kbit/s": 1e3 / 8, "Kbit/s": 1e3 / 8, "Mbit/s": 1e6 / 8, "Gbit/s": 1e9 / 8,
	"bps": 1.0 / 8, "kbps": 1e3 / 8, "Kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8,
}

// MinBandwidth is the smallest bandwidth quota: below one full-size
// packet a second, the token bucket would drop every packet.
const MinBandwidth = 1500

// ParseBandwidth parses a bandwidth such as "1MB/s", "10Mbit/s", "2.5
// Gbps" or "512KiB/s" into bytes per second. "" means unlimited and gives
// 0. A number without a unit is an error: bits or bytes would be a guess.
func ParseBandwidth(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		return 0, fmt.Errorf("%q has no unit: write bytes (\"%sB/s\", \"kB/s\", \"MB/s\") or bits (\"bit/s\", \"Mbit/s\")", s, t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	f, err := strconv.ParseFloat(num, 64)
	mult, ok := bandwidthUnits[unit]
	if err != nil || !ok {
		return 0, fmt.Errorf("%q is not a bandwidth such as \"1MB/s\", \"10Mbit/s\" or \"512KiB/s\"", s)
	}
	v := f * mult
	if v < MinBandwidth {
		return 0, fmt.Errorf("%q is less than %d bytes per second, one full-size packet: everything would be dropped", s, MinBandwidth)
	}
	if v > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}
