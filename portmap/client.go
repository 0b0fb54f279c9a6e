package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Protocol is a port-mapping protocol.
type Protocol uint8

const (
	PCP    Protocol = iota + 1 // RFC 6887
	NATPMP                     // RFC 6886
	UPnP                       // UPnP IGD, WANIPConnection v1 or v2
)

func (p Protocol) String() string {
	switch p {
	case PCP:
		return "pcp"
	case NATPMP:
		return "nat-pmp"
	case UPnP:
		return "upnp"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// ParseProtocol parses "pcp", "nat-pmp" (or "natpmp", "pmp") or "upnp".
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pcp":
		return PCP, nil
	case "nat-pmp", "natpmp", "pmp":
		return NATPMP, nil
	case "upnp":
		return UPnP, nil
	}
	return 0, fmt.Errorf("portmap: unknown protocol %q (want pcp, nat-pmp or upnp)", s)
}

// Defaults of Config.
const (
	// DefaultTimeout bounds the search for a mapping when the router does
	// not answer: a few hundred milliseconds, run beside STUN.
	DefaultTimeout = 400 * time.Millisecond
	// DefaultLifetime is the lifetime asked for (renewed at half of it).
	DefaultLifetime = 2 * time.Hour
	// MinLifetime is the shortest Lifetime accepted.
	MinLifetime = 2 * time.Second
)

// ErrNoMapping is returned by Map when no protocol gave a mapping; it wraps
// (errors.Join) each protocol's error.
var ErrNoMapping = errors.New("portmap: no mapping")

// ErrNotOnGatewayLink is returned by Map for a local address the gateway
// cannot map: not IPv4, loopback, or not on the gateway's interface.
var ErrNotOnGatewayLink = errors.New("portmap: local address is not on the gateway's link")

// Config configures a Client. The zero value asks the default gateway
// through PCP, then NAT-PMP, then UPnP IGD, with DefaultTimeout and
// DefaultLifetime, and logs nothing.
type Config struct {
	// Gateway is the router to ask; the zero Addr means the next hop of
	// the kernel's IPv4 default route at the time of each Map.
	Gateway netip.Addr
	// Protocols are the protocols tried, in this order; nil means PCP,
	// NATPMP, UPnP. Naming one forces it (tests use that to check each
	// protocol alone).
	Protocols []Protocol
	// Timeout bounds Map's search when routers do not answer, and each
	// renewal and deletion; 0 means DefaultTimeout.
	Timeout time.Duration
	// Lifetime is the mapping lifetime asked for; 0 means DefaultLifetime.
	// The router may grant another; the Mapping renews at half of what
	// was granted.
	Lifetime time.Duration
	// Logger receives debug lines about requests and renewals; nil means
	// silent.
	Logger *slog.Logger
}

// Validate reports a configuration error.
func (c *Config) Validate() error {
	switch {
	case c.Gateway.IsValid() && !c.Gateway.Is4():
		return fmt.Errorf("portmap: Config.Gateway %v is not IPv4", c.Gateway)
	case c.Timeout < 0:
		return fmt.Errorf("portmap: Config.Timeout %v is negative", c.Timeout)
	case c.Lifetime != 0 && c.Lifetime < MinLifetime:
		return fmt.Errorf("portmap: Config.Lifetime %v is below %v", c.Lifetime, MinLifetime)
	case c.Lifetime > time.Duration(1<<32-1)*time.Second:
		return fmt.Errorf("portmap: Config.Lifetime %v is too long", c.Lifetime)
	}
	for i, p := range c.Protocols {
		if p < PCP || p > UPnP {
			return fmt.Errorf("portmap: Config.Protocols: unknown %v", p)
		}
		for _, q := range c.Protocols[:i] {
			if p == q {
				return fmt.Errorf("portmap: Config.Protocols: %v twice", p)
			}
		}
	}
	return nil
}

// Client asks a router for port mappings. It is safe for concurrent use,
// owns no goroutine and needs no Close (each Mapping has its own).
type Client struct {
	cfg Config
	log *slog.Logger
}

// New returns a Client; it sends nothing.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Protocols == nil {
		cfg.Protocols = []Protocol{PCP, NATPMP, UPnP}
	} else {
		cfg.Protocols = append([]Protocol(nil), cfg.Protocols...)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log}, nil
}

// has reports whether p is enabled.
func (c *Client) has(p Protocol) bool {
	for _, q := range c.cfg.Protocols {
		if q == p {
			return true
		}
	}
	return false
}

// gateway returns the configured gateway, or the kernel's, and checks that
// local can be mapped by it.
func (c *Client) gateway(local netip.Addr) (netip.Addr, error) {
	if !local.Is4() || local.IsLoopback() || local.IsUnspecified() || local.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%w: %v", ErrNotOnGatewayLink, local)
	}
	if c.cfg.Gateway.IsValid() {
		return c.cfg.Gateway, nil
	}
	gw, err := DefaultGateway()
	if err != nil {
		return netip.Addr{}, err
	}
	ifc, err := net.InterfaceByName(gw.Interface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: gateway interface: %w", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: gateway interface: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == local {
				return gw.Addr, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %v is not on %s (gateway %v)", ErrNotOnGatewayLink, local, gw.Interface, gw.Addr)
}

// mapper is one protocol's view of one mapping.
type mapper interface {
	// add creates or renews the mapping for lifetime and returns the
	// external address and the granted lifetime.
	add(ctx context.Context, lifetime time.Duration) (netip.AddrPort, time.Duration, error)
	// del deletes the mapping.
	del(ctx context.Context) error
}

// Map asks the gateway to forward UDP sent to an external port to local
// (an IPv4 address of this host on the gateway's link, and the port of a
// socket bound to it). PCP, then NAT-PMP (in Config.Protocols order), run
// beside UPnP IGD; the first mapping made wins and one made meanwhile by
// the other is deleted. A NAT-PMP-only router answers PCP with a version
// error (RFC 6887, Section 9), so NAT-PMP follows PCP without waiting.
// The search takes at most Config.Timeout when the router does not
// answer. The Mapping renews itself until Close.
func (c *Client) Map(ctx context.Context, local netip.AddrPort) (*Mapping, error) {
	gw, err := c.gateway(local.Addr())
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	type result struct {
		p    Protocol
		m    mapper
		ext  netip.AddrPort
		life time.Duration
		err  error
	}
	results := make(chan result, 2)
	runs := 0
	try := func(ctx context.Context, p Protocol) result {
		var m mapper
		switch p {
		case PCP:
			m = &pcpMapper{gw: gw, local: local, nonce: newNonce()}
		case NATPMP:
			m = &pmpMapper{gw: gw, local: local}
		case UPnP:
			dev, err := discoverIGD(ctx, gw, local.Addr())
			if err != nil {
				return result{p: p, err: err}
			}
			m = &upnpMapper{dev: dev, local: local}
		}
		sent := ctx.Err() == nil // add sends nothing on a done context
		ext, life, err := m.add(ctx, c.cfg.Lifetime)
		if err != nil && sent && parent.Err() != nil {
			// Cancelled by the caller (an agent closing, Ctrl-C): the
			// request may have reached the router before; undo it.
			dctx, dcancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
			if derr := m.del(dctx); derr == nil {
				c.log.Debug("portmap: deleted a mapping asked for before the cancellation", "protocol", p, "local", local)
			}
			dcancel()
		}
		return result{p, m, ext, life, err}
	}
	var chain []Protocol
	for _, p := range c.cfg.Protocols {
		if p != UPnP {
			chain = append(chain, p)
		}
	}
	// Map waits for both goroutines; cancelling ctx ends them early.
	if len(chain) > 0 {
		runs++
		go func() {
			var errs []error
			for _, p := range chain {
				if ctx.Err() != nil {
					errs = append(errs, fmt.Errorf("%v: %w", p, ctx.Err()))
					continue
				}
				r := try(ctx, p)
				if r.err == nil {
					results <- r
					return
				}
				errs = append(errs, fmt.Errorf("%v: %w", p, r.err))
			}
			results <- result{err: errors.Join(errs...)}
		}()
	}
	if c.has(UPnP) {
		runs++
		go func() {
			r := try(ctx, UPnP)
			if r.err != nil {
				r.err = fmt.Errorf("upnp: %w", r.err)
			}
			results <- r
		}()
	}
	var won *result
	var errs []error
	for range runs {
		r := <-results
		switch {
		case r.err != nil:
			c.log.Debug("portmap: no mapping", "gateway", gw, "local", local, "err", r.err)
			errs = append(errs, r.err)
		case won == nil:
			won = &r
			cancel()
		default:
			// Both made a mapping: keep the first, delete the other.
			dctx, dcancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
			if err := r.m.del(dctx); err != nil {
				c.log.Debug("portmap: deleting a second mapping", "protocol", r.p, "err", err)
			}
			dcancel()
		}
	}
	if won == nil {
		return nil, fmt.Errorf("%w from %v for %v: %w", ErrNoMapping, gw, local, errors.Join(errs...))
	}
	c.log.Debug("portmap: mapped", "protocol", won.p, "gateway", gw, "local", local, "external", won.ext, "lifetime", won.life)
	return newMapping(c, won.p, gw, local, won.m, won.ext, won.life), nil
}

// Mapping is a port mapping on the router. It renews itself at half its
// lifetime from a goroutine that Close stops. Its methods are safe for
// concurrent use.
type Mapping struct {
	c        *Client
	proto    Protocol
	gw       netip.Addr
	local    netip.AddrPort
	m        mapper
	cancel   context.CancelFunc // ends renewLoop's context
	done     chan struct{}
	closeErr error
	once     sync.Once

	mu       sync.Mutex
	ext      netip.AddrPort
	expires  time.Time
	renewals int
}

func newMapping(c *Client, p Protocol, gw netip.Addr, local netip.AddrPort, m mapper, ext netip.AddrPort, life time.Duration) *Mapping {
	ctx, cancel := context.WithCancel(context.Background())
	mp := &Mapping{c: c, proto: p, gw: gw, local: local, m: m, ext: ext,
		expires: time.Now().Add(life), cancel: cancel, done: make(chan struct{})}
	go mp.renewLoop(ctx, life)
	return mp
}

// External returns the router's external address and the mapped port.
func (m *Mapping) External() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ext
}

// Protocol returns the protocol that made the mapping.
func (m *Mapping) Protocol() Protocol { return m.proto }

// Gateway returns the router that holds the mapping.
func (m *Mapping) Gateway() netip.Addr { return m.gw }

// Local returns the local address the mapping forwards to.
func (m *Mapping) Local() netip.AddrPort { return m.local }

// Renewals returns how many renewals have succeeded, and when the mapping
// expires unless renewed again.
func (m *Mapping) Renewals() (int, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.renewals, m.expires
}

// renewLoop renews the mapping at half its granted lifetime (RFC 6887,
// Section 11.2.1; RFC 6886, Section 3.3). A failed renewal is retried at
// half the remaining time (at least a second later).
func (m *Mapping) renewLoop(ctx context.Context, life time.Duration) {
	defer close(m.done)
	next := life / 2
	for {
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, m.c.cfg.Timeout)
		ext, granted, err := m.m.add(rctx, m.c.cfg.Lifetime)
		cancel()
		now := time.Now()
		m.mu.Lock()
		if err == nil {
			if ext != m.ext {
				m.c.log.Warn("portmap: renewal changed the external address", "old", m.ext, "new", ext)
			}
			m.ext, m.expires = ext, now.Add(granted)
			m.renewals++
			next = granted / 2
		} else {
			next = max(m.expires.Sub(now)/2, time.Second)
		}
		m.mu.Unlock()
		if err != nil {
			m.c.log.Debug("portmap: renewal failed", "protocol", m.proto, "local", m.local, "err", err)
		} else {
			m.c.log.Debug("portmap: renewed", "protocol", m.proto, "external", ext, "lifetime", granted)
		}
	}
}

// Close stops renewing and deletes the mapping on the router (PCP and
// NAT-PMP: a request with lifetime 0; UPnP: DeletePortMapping), waiting
// at most Config.Timeout for the answer. Calling it again returns the
// first result.
func (m *Mapping) Close() error {
	m.once.Do(func() {
		m.cancel()
		<-m.done
		ctx, cancel := context.WithTimeout(context.Background(), m.c.cfg.Timeout)
		defer cancel()
		if err := m.m.del(ctx); err != nil {
			m.closeErr = fmt.Errorf("portmap: deleting %v mapping of %v: %w", m.proto, m.local, err)
			m.c.log.Debug("portmap: delete failed", "err", m.closeErr)
			return
		}
		m.c.log.Debug("portmap: deleted", "protocol", m.proto, "local", m.local)
	})
	return m.closeErr
}
