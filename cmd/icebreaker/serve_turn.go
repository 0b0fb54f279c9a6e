package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/internal/iceservers"
	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// turnRelay is the TURN half of `icebreaker serve`: the user sources, the
// authenticator, the peer policy and the TURN server that the STUN
// listeners hand their non-Binding traffic to.
type turnRelay struct {
	cfg     config.TURN
	server  *turnserver.Server
	policy  *policy.Policy
	store   *userstore.Lazy // nil without an SQLite user store
	pg      *userstore.PG   // the PostgreSQL user store, if turn.user_db is a postgres:// URL
	noStore string          // why there is no user store, when store is nil

	relay, public [2]netip.Addr // by family: IPv4, IPv6; public is what clients see
	derived       bool          // relay derived from the listeners, not configured

	// What a reload (reload.go) rebuilds the authenticator and the
	// policy from; mu serialises reloads.
	mu          sync.Mutex
	ifaddrs     []netip.Addr
	own         []netip.AddrPort
	nonceSecret []byte
	// mintSecret signs the credentials that the rendezvous and the ICE
	// test page hand out: the first REST secret, kept current by reload.
	mintSecret *iceservers.Secret

	closeOnce sync.Once
	closeErr  error
}

// firstSecret is the REST secret that minted credentials are signed
// with: the first of tc's, or "" when it has none.
func firstSecret(tc config.TURN) string {
	if len(tc.RESTSecrets) == 0 {
		return ""
	}
	return tc.RESTSecrets[0]
}

// newTURNRelay builds the TURN server for a validated configuration. The
// caller must Close it, after the STUN servers that use it.
func newTURNRelay(cfg config.Config, ifaddrs []netip.Addr, logger *slog.Logger) (*turnRelay, error) {
	t := &turnRelay{cfg: cfg.TURN, ifaddrs: ifaddrs, mintSecret: iceservers.NewSecret(firstSecret(cfg.TURN))}
	if err := t.resolveRelay(cfg, ifaddrs); err != nil {
		return nil, err
	}
	if err := t.initNonceSecret(); err != nil {
		return nil, err
	}
	if err := t.openUsers(logger); err != nil {
		return nil, err
	}
	auth, err := t.newAuth(cfg.TURN)
	if err != nil {
		t.Close()
		return nil, err
	}
	if t.policy, err = t.newPolicy(cfg.TURN); err != nil {
		t.Close()
		return nil, err
	}
	lo, hi := cfg.TURN.PortRange()
	var errLimit *iplimit.Limiter
	if q := cfg.TURN.Quotas; q.ErrorRatePerIP > 0 {
		if errLimit, err = iplimit.New(iplimit.Config{Rate: float64(q.ErrorRatePerIP), Burst: 2 * q.ErrorRatePerIP}); err != nil {
			t.Close()
			return nil, err
		}
	}
	ext4, ext6 := cfg.TURN.ExternalAddrs()
	t.server, err = turnserver.New(turnserver.Config{
		Auth:               auth,
		Policy:             t.policy,
		RelayIPv4:          t.relay[0],
		RelayIPv6:          t.relay[1],
		ExternalIPv4:       ext4,
		ExternalIPv6:       ext6,
		PortRange:          turnserver.PortRange{Min: lo, Max: hi},
		DefaultLifetime:    cfg.TURN.Lifetime.Default,
		MaxLifetime:        cfg.TURN.Lifetime.Max,
		LooseChannels:      cfg.TURN.LooseChannels,
		Quotas:             turnQuotas(cfg),
		OverflowAlternates: cfg.TURN.Quotas.Alternates(),
		Software:           cfg.STUN.Software,
		ErrorLimiter:       errLimit,
		Logger:             logger,
	})
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// descriptorBudget is turn.quotas.descriptors, or when 0 the open-file
// limit less what the listeners may hold: tcp.max_conns for each TCP and
// TLS address, and DefaultDescriptorReserve for the listening sockets and
// the rest of the process; at least half the limit.
func descriptorBudget(cfg config.Config) int {
	if n := cfg.TURN.Quotas.Descriptors; n > 0 {
		return n
	}
	streams := len(cfg.TLSAddrs())
	if cfg.TCP.Enabled {
		streams += len(cfg.ListenAddrs())
	}
	b := turnserver.DescriptorBudget(turnserver.DefaultDescriptorReserve + streams*cfg.TCP.MaxConns)
	if b == 0 {
		return -1 // no limit known: no budget
	}
	return b
}

// resolveRelay sets the relay and public addresses: turn.relay_ip (or the
// private side of turn.external_ip) when configured; otherwise, per
// family, a specific listen IP, or for a wildcard listener the host
// address that routing picks (see hostAddr).
func (t *turnRelay) resolveRelay(cfg config.Config, ifaddrs []netip.Addr) error {
	t.relay[0], t.relay[1] = cfg.TURN.RelayAddrs()
	if !t.relay[0].IsValid() && !t.relay[1].IsValid() {
		t.derived = true
		var wild [2]bool
		for _, ap := range append(cfg.ListenAddrs(), cfg.TLSAddrs()...) {
			a := ap.Addr()
			switch {
			case !a.IsUnspecified():
				if f := family(a); !t.relay[f].IsValid() {
					t.relay[f] = a
				}
			case a.Is4():
				wild[0] = true
			default: // [::] is dual-stack
				wild[0], wild[1] = true, true
			}
		}
		for f := range wild {
			if wild[f] && !t.relay[f].IsValid() {
				t.relay[f] = hostAddr(f == 0, ifaddrs)
			}
		}
	}
	ext4, ext6 := cfg.TURN.ExternalAddrs()
	t.public = t.relay
	for f, e := range [2]netip.Addr{ext4, ext6} {
		if !e.IsValid() {
			continue
		}
		if !t.relay[f].IsValid() {
			return fmt.Errorf("turn.external_ip: %v has no relay address of its family to map; set turn.relay_ip", e)
		}
		t.public[f] = e
	}
	if !t.relay[0].IsValid() && !t.relay[1].IsValid() {
		return errors.New("TURN: no relay address found on this host; set turn.relay_ip (or --relay-ip), or turn off TURN with --no-turn")
	}
	// Relay sockets open with each allocation: find out now, not at the
	// first Allocate, that an address is not this host's.
	for _, r := range t.relay {
		if !r.IsValid() {
			continue
		}
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: r.AsSlice()})
		if err != nil {
			return fmt.Errorf("turn.relay_ip: cannot bind a relay socket to %v: %w", r, errors.Unwrap(err))
		}
		c.Close()
	}
	return nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// hostAddr picks the address of this host to relay from when the server
// listens on a wildcard: the source address of the default route (found
// by connecting a UDP socket to a documentation address, which sends
// nothing), or else the first global, then private, interface address; for
// IPv4 the loopback address as a last resort. It returns the zero Addr
// when there is none.
func hostAddr(v4 bool, ifaddrs []netip.Addr) netip.Addr {
	network, probe := "udp4", netip.MustParseAddrPort("192.0.2.1:3478")
	if !v4 {
		network, probe = "udp6", netip.MustParseAddrPort("[2001:db8::1]:3478")
	}
	if c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(probe)); err == nil {
		a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		c.Close()
		if a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			return a
		}
	}
	var private, loopback netip.Addr
	for _, a := range ifaddrs {
		switch {
		case a.Is4() != v4 || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified():
		case a.IsLoopback():
			if v4 && !loopback.IsValid() {
				loopback = a
			}
		case a.IsPrivate():
			if !private.IsValid() {
				private = a
			}
		case a.IsGlobalUnicast():
			return a
		}
	}
	if private.IsValid() {
		return private
	}
	return loopback
}

// openUsers opens the user store, if there is one. An existing store is
// opened now, so that a broken one fails the start; a missing one is
// opened once `icebreaker user add` creates it.
func (t *turnRelay) openUsers(logger *slog.Logger) error {
	path := t.cfg.UserDB
	switch {
	case path == config.NoUserDB:
		t.noStore = "turn.user_db is " + config.NoUserDB
		return nil
	case userstore.IsPostgres(path):
		ctx, cancel := context.WithTimeout(context.Background(), pgOpenTimeout)
		defer cancel()
		var err error
		if t.pg, err = userstore.OpenPostgres(ctx, path, logger); err != nil {
			return fmt.Errorf("user store (turn.user_db): %w", err)
		}
		return nil
	case path == "":
		var err error
		if path, err = userstore.DefaultPath(); err != nil {
			t.noStore = err.Error()
			logger.Warn("no user store", "err", err)
			return nil
		}
	}
	var err error
	if t.store, err = userstore.OpenLazy(path, lazyCheckInterval, logger); err != nil {
		return fmt.Errorf("user store (turn.user_db): %w", err)
	}
	return nil
}

// users builds the key lookup: the static users of tc, then the user
// store.
func (t *turnRelay) users(tc config.TURN) turnauth.Chain {
	var chain turnauth.Chain
	if len(tc.Users) > 0 {
		chain = append(chain, turnauth.StaticUsers(tc.StaticUsers()))
	}
	if t.store != nil {
		chain = append(chain, t.store)
	}
	if t.pg != nil {
		chain = append(chain, t.pg)
	}
	return chain
}

// setOwn tells the policy the server's own listener addresses, so that
// no client relays to them: each address as it listens, and each of their
// ports on the turn.external_ip addresses, which reach those listeners
// through the 1:1 NAT. Relayed addresses are deliberately not "own": two
// clients of one server must be able to relay to each other, which ICE
// needs when both peers sit behind symmetric NATs (see turn/turnserver).
func (t *turnRelay) setOwn(listeners ownListeners) {
	own := slices.Clone(listeners)
	ext4, ext6 := t.cfg.ExternalAddrs()
	for _, l := range listeners {
		for _, e := range []netip.Addr{ext4, ext6} {
			if e.IsValid() {
				own = append(own, netip.AddrPortFrom(e, l.Port()))
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.own = own
	t.policy.SetOwn(own)
}

// ownListeners are the transport addresses the daemon listens on: STUN
// and TURN over UDP, TCP and TLS, the metrics endpoint, and any service
// added beside them. serve collects them in one place and hands them to
// the TURN policy (turnRelay.setOwn); a new listener must be added there.
type ownListeners []netip.AddrPort

// add adds listening addresses.
func (o *ownListeners) add(addrs ...netip.AddrPort) { *o = append(*o, addrs...) }

// announce prints the TURN realm, the relay addresses, the users and how
// to add one; warn reports what looks wrong.
func (t *turnRelay) announce(ctx context.Context, w io.Writer, warn func(string)) {
	c := t.cfg
	lo, hi := c.PortRange()
	var relays []string
	for f, r := range t.relay {
		if !r.IsValid() {
			continue
		}
		s := r.String()
		if t.public[f] != r {
			s += " (advertised as " + t.public[f].String() + ")"
		}
		relays = append(relays, s)
	}
	fmt.Fprintf(w, "TURN: realm %q, relay %s, ports %d-%d\n", c.Realm, strings.Join(relays, " and "), lo, hi)
	if t.derived {
		fmt.Fprintln(w, "TURN: relay address chosen from this host's addresses; set turn.relay_ip (--relay-ip) to choose another")
		if t.relay[0].IsLoopback() {
			warn("TURN: the relay address is loopback, so the relay can reach no peer on another host")
		}
	}
	for f, r := range t.relay {
		if r.IsPrivate() && t.public[f] == r {
			warn(fmt.Sprintf("TURN: %v is a private address: behind a 1:1 NAT, set turn.external_ip (--external-ip) to the public one", r))
		}
	}
	t.warnRelayDenied(warn)
	static, stored := len(c.Users), 0
	storeState := "user store: none (" + t.noStore + ")"
	if t.store != nil {
		n, state := storeCount(ctx, t.store, c.Realm)
		stored, storeState = n, "user store "+t.store.Path()+state
	}
	if t.pg != nil {
		storeState = "PostgreSQL user store " + t.pg.Path()
		if users, err := t.pg.List(ctx, c.Realm); err != nil {
			storeState += fmt.Sprintf(" (cannot list users: %v)", err)
		} else {
			stored = len(users)
		}
	}
	var rest string
	if n := len(c.RESTSecrets); n > 0 {
		rest = fmt.Sprintf(", REST API credentials with %d secret(s)", n)
	}
	fmt.Fprintf(w, "TURN: %d static user(s), %d in the %s%s\n", static, stored, storeState, rest)
	if static+stored > 0 || rest != "" {
		return
	}
	if t.store == nil && t.pg == nil {
		fmt.Fprintln(w, "TURN: nobody can authenticate, so TURN requests get 401: add users to turn.users (--user NAME:PASSWORD) or set turn.rest_secrets")
		return
	}
	cmd := "icebreaker user add"
	if c.Realm != defaultUserRealm {
		cmd += " --realm " + shellQuote(c.Realm)
	}
	switch {
	case t.pg != nil:
		cmd += " --db " + shellQuote(t.pg.Path())
	case c.UserDB != "":
		cmd += " --db " + shellQuote(t.store.Path())
	}
	fmt.Fprintln(w, "TURN: no users yet, so every TURN request gets 401 until you add one (the server picks it up at once):")
	fmt.Fprintln(w, "  "+cmd+" --password-stdin alice")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Close closes the TURN server (every allocation and relay goroutine),
// then the user store. Call it after the STUN servers have stopped. It may
// be called more than once.
func (t *turnRelay) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		if t.server != nil {
			errs = append(errs, t.server.Close())
		}
		if t.store != nil {
			errs = append(errs, t.store.Close())
		}
		if t.pg != nil {
			errs = append(errs, t.pg.Close())
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// pgOpenTimeout bounds connecting to a PostgreSQL user store and creating
// its schema at start.
const pgOpenTimeout = 15 * time.Second

// lazyCheckInterval is how often a lookup looks for a user store file
// that did not exist yet.
var lazyCheckInterval = time.Second

// storeCount returns the number of users of realm in the store and a note
// on its state for the startup message.
func storeCount(ctx context.Context, l *userstore.Lazy, realm string) (int, string) {
	s := l.Store()
	if s == nil {
		return 0, " (not created yet)"
	}
	users, err := s.List(ctx, realm)
	if err != nil {
		return 0, fmt.Sprintf(" (cannot list users: %v)", err)
	}
	return len(users), ""
}
