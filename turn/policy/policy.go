package policy

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrDenied is wrapped by every error Check returns.
var ErrDenied = errors.New("policy: peer address denied")

// Config is the operator's part of the policy. The zero value is the
// built-in deny-by-default policy with no exceptions.
type Config struct {
	// Allow lists prefixes that override the built-in denials for the
	// addresses they cover (for example 127.0.0.0/8 in an interop test, or
	// 203.0.113.0/24 in the NAT lab). They never override Deny or the own
	// addresses. An IPv4-mapped prefix (::ffff:a.b.c.d/N, N >= 96) is read
	// as the IPv4 prefix it maps.
	Allow []netip.Prefix
	// Deny lists extra prefixes to refuse. Deny wins over Allow. A Deny
	// prefix matches the peer address as written and every IPv4 address it
	// embeds.
	Deny []netip.Prefix
	// LocalAddrs are this host's interface addresses, used to expand a
	// wildcard own address (0.0.0.0:3478, [::]:3478). Nil means: ask
	// net.InterfaceAddrs each time SetOwn or AddOwn receives a wildcard.
	LocalAddrs []netip.Addr
}

// Validate reports the first invalid prefix or address.
func (c *Config) Validate() error {
	for i, p := range c.Allow {
		if !p.IsValid() {
			return fmt.Errorf("policy: allow[%d]: invalid prefix %v", i, p)
		}
	}
	for i, p := range c.Deny {
		if !p.IsValid() {
			return fmt.Errorf("policy: deny[%d]: invalid prefix %v", i, p)
		}
	}
	for i, a := range c.LocalAddrs {
		if !a.IsValid() {
			return fmt.Errorf("policy: local_addrs[%d]: invalid address", i)
		}
	}
	return nil
}

// Policy decides whether a TURN relay may send to a peer address. It is
// safe for concurrent use: Check and Allowed take no lock and may run while
// SetOwn, AddOwn, RemoveOwn or SetLocalAddrs change the own addresses. The
// zero value is not usable; call New.
type Policy struct {
	allow, deny prefixSet // immutable after New
	own         ownSet
}

// New validates cfg and returns a policy built from a copy of it. It
// starts nothing.
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{allow: newPrefixSet(cfg.Allow), deny: newPrefixSet(cfg.Deny)}
	if cfg.LocalAddrs != nil {
		p.own.fixedLocal = true
		p.own.setLocalLocked(cfg.LocalAddrs)
	}
	return p, nil
}

// SetOwn replaces the server's own transport addresses (listeners and
// relays), including any added with AddOwn. Addresses with port 0 or an
// invalid IP are ignored. A wildcard address denies its port on every local
// address (see the package documentation).
func (p *Policy) SetOwn(addrs []netip.AddrPort) { p.own.set(addrs) }

// AddOwn adds one own address, for example a relay address just allocated.
// Adding an address twice is the same as adding it once.
func (p *Policy) AddOwn(a netip.AddrPort) { p.own.add(a) }

// RemoveOwn removes one own address; unknown addresses are ignored.
func (p *Policy) RemoveOwn(a netip.AddrPort) { p.own.remove(a) }

// Own returns the own addresses, normalised (unmapped, zone dropped) and
// sorted. The caller owns the returned slice.
func (p *Policy) Own() []netip.AddrPort { return p.own.list() }

// SetLocalAddrs replaces the local interface addresses used by wildcard own
// addresses, and stops Policy from asking net.InterfaceAddrs. Call it when
// the host's addresses change.
func (p *Policy) SetLocalAddrs(addrs []netip.Addr) {
	p.own.mu.Lock()
	defer p.own.mu.Unlock()
	p.own.fixedLocal = true
	p.own.setLocalLocked(addrs)
}

// Allowed reports whether the relay may send to peer. It allocates nothing
// and takes no lock, so it can run per packet.
func (p *Policy) Allowed(peer netip.AddrPort) bool {
	return p.judge(peer).kind == verdictAllow
}

// Check returns nil when the relay may send to peer, or a *DeniedError
// (which wraps ErrDenied) saying why not. Only the denial allocates.
func (p *Policy) Check(peer netip.AddrPort) error {
	v := p.judge(peer)
	if v.kind == verdictAllow {
		return nil
	}
	return &DeniedError{Peer: peer, Prefix: v.prefix, Reason: v.reason()}
}

// DeniedError is the error Check returns. It wraps ErrDenied.
type DeniedError struct {
	Peer netip.AddrPort
	// Prefix is the range that denied the peer (for an IPv6 address outside
	// global unicast, 2000::/3 itself); zero for port 0, invalid and own
	// addresses.
	Prefix netip.Prefix
	Reason string // e.g. "10.0.0.1 is in 10.0.0.0/8 (private, RFC 1918)"
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("policy: peer %v denied: %s", e.Peer, e.Reason)
}

// Unwrap returns ErrDenied.
func (e *DeniedError) Unwrap() error { return ErrDenied }

type verdictKind uint8

const (
	verdictAllow verdictKind = iota
	verdictInvalid
	verdictPort0
	verdictOwn
	verdictDenyList
	verdictBuiltin
)

// verdict is the outcome of judge: plain values, so Allowed does not
// allocate. The reason text is built only by Check.
type verdict struct {
	kind   verdictKind
	v      view // the judged address that decided
	prefix netip.Prefix
	what   string
}

func (v verdict) reason() string {
	addr := v.v.addr.String()
	if v.v.kind != embNone && v.v.kind != embMapped {
		addr = fmt.Sprintf("embedded IPv4 %v (%v)", v.v.addr, v.v.kind)
	}
	switch v.kind {
	case verdictInvalid:
		return "invalid address"
	case verdictPort0:
		return "port 0"
	case verdictOwn:
		return fmt.Sprintf("%s port %d is one of the server's own addresses", addr, v.v.port)
	case verdictDenyList:
		return fmt.Sprintf("%s is in %v (configured deny list)", addr, v.prefix)
	case verdictBuiltin:
		if v.prefix == notGlobal6.prefix {
			return fmt.Sprintf("%s is outside %v (global unicast, RFC 4291)", addr, v.prefix)
		}
		return fmt.Sprintf("%s is in %v (%s)", addr, v.prefix, v.what)
	}
	return "allowed"
}

// judge applies the precedence of the package documentation.
func (p *Policy) judge(peer netip.AddrPort) verdict {
	if !peer.Addr().IsValid() {
		return verdict{kind: verdictInvalid}
	}
	if peer.Port() == 0 {
		return verdict{kind: verdictPort0}
	}
	vs := canonical(peer)
	all := [3]view{vs.raw}
	copy(all[1:], vs.emb[:vs.n])
	views := all[:1+vs.n]

	// 1. Own addresses: always denied.
	for _, v := range views {
		if v.own && p.own.contains(v.addr, v.port) {
			return verdict{kind: verdictOwn, v: v}
		}
	}
	// 2. Explicit deny list, on the address as written and every embedding.
	for _, v := range views {
		if pf, ok := p.deny.lookup(v.addr); ok {
			return verdict{kind: verdictDenyList, v: v, prefix: pf}
		}
	}
	// 3. Built-in ranges, each judged address cleared only by an explicit
	// allow covering that same address.
	for i, v := range views {
		if i == 0 && !vs.judgeRaw {
			continue
		}
		b, denied := lookupBuiltin(v.addr)
		if !denied {
			continue
		}
		if _, ok := p.allow.lookup(v.addr); ok {
			continue
		}
		return verdict{kind: verdictBuiltin, v: v, prefix: b.prefix, what: b.what}
	}
	return verdict{kind: verdictAllow}
}
