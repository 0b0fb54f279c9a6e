package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Validate reports the first invalid setting as an *Error naming its key.
// Parse calls it; call it after Read and after changing a Config (for
// example from command-line flags).
func (c Config) Validate() error {
	for _, check := range []func() *Error{c.Log.validate, c.validateListeners, c.validateSTUN, c.TURN.validate, c.Rendezvous.validate, c.validateTestPage, c.validateMetrics, c.validateOps} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (l Log) validate() *Error {
	if _, ok := parseLevel(l.Level); !ok {
		return keyErr("log.level", "%q is not a level (debug, info, warn or error)", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		return keyErr("log.format", "%q is not a format (text or json)", l.Format)
	}
	return nil
}

// maxUDPSockets bounds udp.sockets: far above any core count, low enough
// that a typo cannot exhaust file descriptors.
const maxUDPSockets = 1024

// listKey returns the key of element i of the list at key.
func listKey(key string, i int) string { return fmt.Sprintf("%s[%d]", key, i) }

// parseAddrList parses a list of listen addresses with default port def.
func parseAddrList(key string, list []string, def uint16) ([]netip.AddrPort, *Error) {
	var out []netip.AddrPort
	for i, s := range list {
		ap, err := ParseListen(s, def)
		switch {
		case err != nil:
			return nil, keyErr(listKey(key, i), "%v", err)
		case ap.Addr().IsMulticast():
			return nil, keyErr(listKey(key, i), "%v is a multicast address", ap.Addr())
		case slices.Contains(out, ap) && ap.Port() != 0:
			return nil, keyErr(listKey(key, i), "%v is listed twice", ap)
		}
		for j, b := range out {
			if ap.Port() != 0 && ap.Port() == b.Port() && ap.Addr() != b.Addr() && (covers(ap.Addr(), b.Addr()) || covers(b.Addr(), ap.Addr())) {
				return nil, keyErr(listKey(key, i), "%v overlaps %s[%d] %v: a wildcard address already takes that port on every address of its family", ap, key, j, b)
			}
		}
		out = append(out, ap)
	}
	return out, nil
}

func (c Config) validateListeners() *Error {
	listen, err := parseAddrList("listen", c.Listen, DefaultPort)
	if err != nil {
		return err
	}
	if c.UDP.Sockets < 0 || c.UDP.Sockets > maxUDPSockets {
		return keyErr("udp.sockets", "%d is out of range (0-%d; 0 = one per CPU core)", c.UDP.Sockets, maxUDPSockets)
	}
	if c.TCP.IdleTimeout <= 0 {
		return keyErr("tcp.idle_timeout", "%v must be positive", c.TCP.IdleTimeout)
	}
	if c.TCP.MaxConns < 1 {
		return keyErr("tcp.max_conns", "%d must be at least 1", c.TCP.MaxConns)
	}
	if c.TCP.ConnsPerIP < 0 {
		return keyErr("tcp.conns_per_ip", "%d is negative (0 means no limit)", c.TCP.ConnsPerIP)
	}
	if c.TCP.TLSHandshakesPerIP < 0 {
		return keyErr("tcp.tls_handshakes_per_ip", "%d is negative (0 means no limit)", c.TCP.TLSHandshakesPerIP)
	}
	if c.TCP.MessageTimeout <= 0 {
		return keyErr("tcp.message_timeout", "%v must be positive", c.TCP.MessageTimeout)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		if c.TLS.Key == "" {
			return keyErr("tls.key", "must be set when tls.cert is (TLS needs both)")
		}
		return keyErr("tls.cert", "must be set when tls.key is (TLS needs both)")
	}
	tlsAddrs, err := parseAddrList("tls.listen", c.TLS.Listen, DefaultTLSPort)
	if err != nil {
		return err
	}
	plain := (c.UDP.Enabled || c.TCP.Enabled) && len(listen) > 0
	switch {
	case !c.UDP.Enabled && !c.TCP.Enabled && !c.TLS.Enabled():
		return keyErr("udp.enabled", "no transport enabled: udp.enabled and tcp.enabled are false and TLS has no certificate")
	case !plain && !c.TLS.Enabled():
		return keyErr("listen", "no listen address, and TLS has no certificate")
	case c.TLS.Enabled() && len(tlsAddrs) == 0 && len(listen) == 0:
		return keyErr("tls.listen", "empty, and listen has no IP address to serve TLS on")
	}
	if !c.TLS.Enabled() || !c.TCP.Enabled {
		return nil
	}
	// TLS and TCP cannot share a port on the same address.
	for i, t := range c.TLSAddrs() {
		for j, l := range listen {
			if t == l && t.Port() != 0 {
				if len(c.TLS.Listen) == 0 {
					return keyErr("tls.listen", "empty, so TLS would listen on %v, which is also listen[%d] for TCP: set tls.listen", t, j)
				}
				return keyErr(listKey("tls.listen", i), "%v is also listen[%d], where TCP listens", t, j)
			}
		}
	}
	return nil
}

func (c Config) validateSTUN() *Error {
	s := c.STUN
	if s.Software != "" {
		// RFC 8489, Section 14.14: fewer than 128 characters of UTF-8.
		if !utf8.ValidString(s.Software) {
			return keyErr("stun.software", "is not valid UTF-8")
		}
		if n := utf8.RuneCountInString(s.Software); n >= 128 || len(s.Software) > stun.MaxSoftware {
			return keyErr("stun.software", "is %d characters long; RFC 8489 allows fewer than 128 (and %d bytes)", n, stun.MaxSoftware)
		}
	}
	if s.AlternatePort < 0 || s.AlternatePort > 65535 {
		return keyErr("stun.alternate_port", "%d is not a port number (0-65535)", s.AlternatePort)
	}
	return c.validateAlternate()
}

// validateAlternate checks the RFC 5780 settings: a second IP of the same
// family as the one specific listen address, served over UDP.
func (c Config) validateAlternate() *Error {
	s := c.STUN
	if s.AlternateIP == "" {
		if s.AlternatePort != 0 {
			return keyErr("stun.alternate_port", "is set but stun.alternate_ip is not (RFC 5780 needs both)")
		}
		return nil
	}
	alt, err := netip.ParseAddr(s.AlternateIP)
	if err != nil {
		return keyErr("stun.alternate_ip", "%q is not an IP address", s.AlternateIP)
	}
	alt = alt.Unmap()
	if alt.IsUnspecified() || alt.IsMulticast() {
		return keyErr("stun.alternate_ip", "%q is not a specific unicast address", s.AlternateIP)
	}
	if len(c.Listen) != 1 {
		return keyErr("stun.alternate_ip", "RFC 5780 needs exactly one listen address, a specific IP; listen has %d", len(c.Listen))
	}
	l := c.ListenAddrs()[0]
	switch {
	case l.Addr().IsUnspecified():
		return keyErr("stun.alternate_ip", "requires listen to be a specific IP address, not %q", c.Listen[0])
	case alt.Is4() != l.Addr().Is4():
		return keyErr("stun.alternate_ip", "%s and the listen address %s are not of the same IP family", alt, l.Addr())
	case alt == l.Addr():
		return keyErr("stun.alternate_ip", "%s is the listen address itself", alt)
	case !c.UDP.Enabled:
		return keyErr("stun.alternate_ip", "RFC 5780 works over UDP, but udp.enabled is false")
	}
	if s.AlternatePort != 0 && s.AlternatePort == int(l.Port()) {
		return keyErr("stun.alternate_port", "%d is the listen port itself", s.AlternatePort)
	}
	if s.AlternatePort == 0 && l.Port() == 65535 {
		return keyErr("stun.alternate_port", "must be set: the listen port is 65535, so port+1 does not exist")
	}
	return nil
}

// validateMetrics checks metrics.listen: empty (off), or a fixed IP:PORT
// that no STUN listener takes over TCP.
func (c Config) validateMetrics() *Error {
	s := c.Metrics.Listen
	if s == "" {
		return nil
	}
	ap, err := ParseListen(s, 0)
	_, noPort := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return keyErr("metrics.listen", "%q is not IP:PORT (for example 127.0.0.1:9641)", s)
	case noPort != nil:
		return keyErr("metrics.listen", "%q has no port: write IP:PORT, for example %s", s, netip.AddrPortFrom(ap.Addr(), 9641))
	case ap.Port() == 0:
		return keyErr("metrics.listen", "port 0 would be a different free port at every start, where Prometheus cannot find it: choose a fixed port (such as 9641)")
	case ap.Addr().IsMulticast():
		return keyErr("metrics.listen", "%v is a multicast address", ap.Addr())
	}
	clash := func(key string, list []netip.AddrPort) *Error {
		for i, l := range list {
			if l.Port() == ap.Port() && (l.Addr() == ap.Addr() || covers(l.Addr(), ap.Addr()) || covers(ap.Addr(), l.Addr())) {
				if key == "" {
					return keyErr("metrics.listen", "%v takes the TLS port %v (tls.listen is empty, so TLS listens on every IP of listen at port %d)", ap, l, DefaultTLSPort)
				}
				return keyErr("metrics.listen", "%v takes the TCP port of %s[%d] %v", ap, key, i, l)
			}
		}
		return nil
	}
	if c.TCP.Enabled {
		if err := clash("listen", c.ListenAddrs()); err != nil {
			return err
		}
	}
	tlsKey := "tls.listen"
	if len(c.TLS.Listen) == 0 {
		tlsKey = "" // derived from listen
	}
	return clash(tlsKey, c.TLSAddrs())
}

func (t TURN) validate() *Error {
	if err := t.validateAuth(); err != nil {
		return err
	}
	if err := t.validateRelay(); err != nil {
		return err
	}
	if _, _, err := parsePortRange(t.RelayPorts); err != nil {
		return keyErr("turn.relay_ports", "%v", err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"turn.lifetime.default", t.Lifetime.Default}, {"turn.lifetime.max", t.Lifetime.Max}} {
		if d.v <= 0 || d.v%time.Second != 0 || d.v/time.Second > 1<<32-1 {
			return keyErr(d.key, "%v is not a positive whole number of seconds", d.v)
		}
	}
	if t.Lifetime.Max < t.Lifetime.Default {
		return keyErr("turn.lifetime.max", "%v is shorter than turn.lifetime.default %v", t.Lifetime.Max, t.Lifetime.Default)
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"turn.policy.allow_peers", t.Policy.AllowPeers}, {"turn.policy.deny_peers", t.Policy.DenyPeers}} {
		for i, s := range l.list {
			if _, err := parsePrefix(s); err != nil {
				return keyErr(listKey(l.key, i), "%v", err)
			}
		}
	}
	q := t.Quotas
	if q.AllocationsPerUser < 0 {
		return keyErr("turn.quotas.allocations_per_user", "%d is negative (0 means unlimited)", q.AllocationsPerUser)
	}
	if q.TotalAllocations < 0 {
		return keyErr("turn.quotas.total_allocations", "%d is negative (0 means unlimited)", q.TotalAllocations)
	}
	if _, err := ParseBandwidth(q.BandwidthPerAllocation); err != nil {
		return keyErr("turn.quotas.bandwidth_per_allocation", "%v", err)
	}
	if _, err := ParseBandwidth(q.BandwidthPerUser); err != nil {
		return keyErr("turn.quotas.bandwidth_per_user", "%v", err)
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"turn.quotas.permissions_per_allocation", q.PermissionsPerAllocation}, {"turn.quotas.error_rate_per_ip", q.ErrorRatePerIP},
		{"turn.quotas.connects_per_allocation", q.ConnectsPerAllocation}, {"turn.quotas.connects_per_user", q.ConnectsPerUser},
		{"turn.quotas.tcp_connections_per_allocation", q.TCPConnectionsPerAllocation}, {"turn.quotas.descriptors", q.Descriptors}} {
		if v.n < 0 {
			return keyErr(v.key, "%d is negative (0 means unlimited)", v.n)
		}
	}
	for i, a := range q.OverflowAlternates {
		if _, err := parseAlternate(a); err != nil {
			return keyErr(listKey("turn.quotas.overflow_alternates", i), "%v", err)
		}
	}
	if len(q.OverflowAlternates) > 0 && q.TotalAllocations == 0 {
		return keyErr("turn.quotas.overflow_alternates", "needs turn.quotas.total_allocations: without a limit nothing overflows")
	}
	return nil
}

// minNonceSecret is the shortest turn.nonce_secret, as turnauth requires.
const minNonceSecret = 16

// maxNonceTTL is the longest turn.nonce_ttl, turnauth.MaxNonceTTL.
const maxNonceTTL = 65535 * time.Second

func (t TURN) validateAuth() *Error {
	switch {
	case t.Realm == "":
		return keyErr("turn.realm", "is empty; the realm is part of every user's key")
	case len(t.Realm) > stun.MaxRealm || utf8.RuneCountInString(t.Realm) >= 128:
		return keyErr("turn.realm", "is too long (RFC 8489: fewer than 128 characters, at most %d bytes)", stun.MaxRealm)
	}
	if _, err := stun.PreparePassword(t.Realm); err != nil {
		return keyErr("turn.realm", "%q is not valid in a REALM (RFC 8265 OpaqueString)", t.Realm)
	}
	seen := map[string]int{}
	for i, u := range t.Users {
		key := listKey("turn.users", i)
		switch {
		case u.Username == "":
			return keyErr(key+".username", "is empty")
		case len(u.Username) > stun.MaxUsername:
			return keyErr(key+".username", "is %d bytes long; at most %d", len(u.Username), stun.MaxUsername)
		case !utf8.ValidString(u.Username) || strings.IndexFunc(u.Username, unicode.IsControl) >= 0:
			return keyErr(key+".username", "%q is not UTF-8 text without control characters", u.Username)
		case u.Password == "":
			return keyErr(key+".password", "is empty")
		}
		if j, dup := seen[u.Username]; dup {
			return keyErr(key+".username", "%q is also turn.users[%d]", u.Username, j)
		}
		seen[u.Username] = i
		if _, err := stun.LongTermKey(stun.PasswordMD5, u.Username, t.Realm, u.Password); err != nil {
			return keyErr(key+".password", "cannot be used in a key (RFC 8265 OpaqueString): control or unassigned characters")
		}
	}
	for i, s := range t.RESTSecrets {
		if s == "" {
			return keyErr(listKey("turn.rest_secrets", i), "is empty")
		}
	}
	if t.NonceSecret != "" && len(t.NonceSecret) < minNonceSecret {
		return keyErr("turn.nonce_secret", "is %d bytes; use at least %d (for example: openssl rand -hex 32)", len(t.NonceSecret), minNonceSecret)
	}
	if t.NonceTTL < time.Second {
		return keyErr("turn.nonce_ttl", "%v is shorter than one second", t.NonceTTL)
	}
	if t.NonceTTL > maxNonceTTL {
		return keyErr("turn.nonce_ttl", "%v is longer than %v, the most a nonce can carry", t.NonceTTL, maxNonceTTL)
	}
	return nil
}

func (t TURN) validateRelay() *Error {
	var relay [2]netip.Addr // by family: 0 IPv4, 1 IPv6
	fam := func(a netip.Addr) int {
		if a.Is4() {
			return 0
		}
		return 1
	}
	for i, s := range t.RelayIP {
		key := listKey("turn.relay_ip", i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			return keyErr(key, "%q is not an IP address", s)
		}
		a = a.Unmap()
		switch {
		case a.IsMulticast():
			return keyErr(key, "%v is a multicast address", a)
		case a.Zone() != "":
			return keyErr(key, "%q has a zone; relay addresses must be global", s)
		case relay[fam(a)].IsValid():
			return keyErr(key, "%v is a second address of its family; the relay uses one IPv4 and one IPv6 address", a)
		}
		relay[fam(a)] = a
	}
	var ext [2]netip.Addr
	for i, s := range t.ExternalIP {
		key := listKey("turn.external_ip", i)
		pub, priv, err := parseExternal(s)
		switch {
		case err != nil:
			return keyErr(key, "%v", err)
		case pub.IsUnspecified() || pub.IsMulticast() || pub.Zone() != "":
			return keyErr(key, "%v is not a unicast address to advertise", pub)
		case ext[fam(pub)].IsValid():
			return keyErr(key, "%v is a second external address of its family; give at most one IPv4 and one IPv6", pub)
		case priv.IsValid() && fam(priv) != fam(pub):
			return keyErr(key, "%q maps addresses of different families", s)
		case priv.IsValid() && (priv.IsUnspecified() || priv.IsMulticast()):
			return keyErr(key, "the private address %v is not a unicast address of this host", priv)
		case priv.IsValid() && relay[fam(priv)].IsValid() && relay[fam(priv)] != priv:
			return keyErr(key, "maps %v, but turn.relay_ip is %v", priv, relay[fam(priv)])
		}
		ext[fam(pub)] = pub
	}
	for f, a := range relay {
		if a.IsUnspecified() && !ext[f].IsValid() {
			return keyErr("turn.relay_ip", "%v is unspecified: set turn.external_ip to the address clients should use", a)
		}
	}
	return nil
}

// covers reports whether a listener on wildcard w also takes port P of a:
// 0.0.0.0 covers IPv4, [::] (dual-stack) covers everything.
func covers(w, a netip.Addr) bool {
	switch {
	case !w.IsUnspecified():
		return false
	case w.Is6():
		return true
	}
	return a.Is4()
}
