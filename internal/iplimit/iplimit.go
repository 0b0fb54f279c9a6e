// Package iplimit bounds what one client address may hold and do: how many
// connections it keeps open at once, and how many events (requests, error
// answers, handshakes) it may cause per second. It is the one per-IP limiter
// of the daemon: the STUN/TURN listeners, the rendezvous and the transit
// relay each make a Limiter from their own Config.
//
// Clients are keyed by address: an IPv4 address (IPv4-mapped IPv6 addresses
// are unmapped first), or an IPv6 prefix, /64 by default, since one IPv6
// host usually has a whole /64 to pick addresses from (RFC 4291, Section
// 2.5.4; RFC 8981 temporary addresses).
//
// The table of keys is bounded (Config.MaxKeys). A key that holds no
// connection and whose token bucket is full again carries no state worth
// keeping, and is pruned when room is needed. When the table is full of
// active keys, a new key is refused (ErrFull): the limiter fails closed
// rather than grow.
package iplimit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxKeys    = 65536
	DefaultIPv6Prefix = 64
)

// Errors returned by Acquire. Callers branch on them with errors.Is.
var (
	// ErrTooManyConns: this address already holds MaxConns.
	ErrTooManyConns = errors.New("too many connections from this address")
	// ErrFull: the table holds MaxKeys active addresses.
	ErrFull = errors.New("too many client addresses")
)

// Config says what each address may do. Its zero value limits nothing but
// the size of the table.
type Config struct {
	// MaxConns is the most connections one address may hold at once
	// (Acquire without Release). 0 means no limit.
	MaxConns int
	// Rate is how many events per second one address may cause on average
	// (Allow). 0 means no limit.
	Rate float64
	// Burst is how many events an address may cause at once after being
	// quiet. 0 means Rate rounded up, at least 1.
	Burst int
	// MaxKeys bounds the number of addresses tracked at once. 0 means
	// DefaultMaxKeys.
	MaxKeys int
	// IPv6Prefix is the prefix length that keys an IPv6 client, 1 to 128.
	// 0 means DefaultIPv6Prefix (64).
	IPv6Prefix int
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxConns < 0:
		return fmt.Errorf("iplimit: MaxConns %d is negative", c.MaxConns)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("iplimit: Rate %v is not a finite, non-negative number", c.Rate)
	case c.Burst < 0:
		return fmt.Errorf("iplimit: Burst %d is negative", c.Burst)
	case c.MaxKeys < 0:
		return fmt.Errorf("iplimit: MaxKeys %d is negative", c.MaxKeys)
	case c.IPv6Prefix < 0 || c.IPv6Prefix > 128:
		return fmt.Errorf("iplimit: IPv6Prefix %d is not between 1 and 128", c.IPv6Prefix)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = DefaultIPv6Prefix
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Burst == 0 && c.Rate > 0 {
		c.Burst = max(1, int(math.Ceil(c.Rate)))
	}
	return c
}

// Stats counts what a Limiter refused. The fields only grow.
type Stats struct {
	ConnsRefused uint64 // Acquire: the address held MaxConns
	RateRefused  uint64 // Allow: the address had no token left
	FullRefused  uint64 // Acquire or Allow: the table was full of active addresses
	Keys         int    // addresses tracked now
}

// Limiter tracks the addresses of one listener or service. Its methods are
// safe for concurrent use. A nil *Limiter allows everything, so that a
// caller without limits needs no branch. Create it with New.
type Limiter struct {
	cfg Config

	connsRefused atomic.Uint64
	rateRefused  atomic.Uint64
	fullRefused  atomic.Uint64

	mu        sync.Mutex
	keys      map[netip.Prefix]entry // guarded by mu
	lastPrune time.Time              // guarded by mu: when the table was last swept while full
}

type entry struct {
	conns  int
	tokens float64
	last   time.Time // when tokens was last brought up to date
}

// pruneEvery bounds how often a full table is swept for idle keys, so that
// a flood of new addresses against a full table costs a map lookup each,
// not a sweep each.
const pruneEvery = 100 * time.Millisecond

// New returns a Limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg.withDefaults(), keys: make(map[netip.Prefix]entry)}, nil
}

// Key returns the key that addr is counted under with prefix bits for IPv6:
// the IPv4 address itself (unmapped from IPv4-mapped IPv6), or the IPv6
// prefix of that length. The zone is dropped.
func Key(addr netip.Addr, ipv6Prefix int) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, err := addr.Prefix(ipv6Prefix)
	if err != nil { // the invalid Addr: all of them share one key
		return netip.Prefix{}
	}
	return p
}

// Acquire counts one more connection from addr, or refuses it with
// ErrTooManyConns or ErrFull. Each successful Acquire must be matched by
// one Release of the same address.
func (l *Limiter) Acquire(addr netip.Addr) error {
	if l == nil {
		return nil
	}
	k := Key(addr, l.cfg.IPv6Prefix)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[k]
	if !ok && !l.roomLocked(now) {
		l.fullRefused.Add(1)
		return ErrFull
	}
	if l.cfg.MaxConns > 0 && e.conns >= l.cfg.MaxConns {
		l.connsRefused.Add(1)
		return ErrTooManyConns
	}
	if !ok {
		e = l.freshLocked(now)
	}
	e.conns++
	l.keys[k] = e
	return nil
}

// Release ends a connection counted by Acquire.
func (l *Limiter) Release(addr netip.Addr) {
	if l == nil {
		return
	}
	k := Key(addr, l.cfg.IPv6Prefix)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[k]
	if !ok || e.conns == 0 {
		return // a Release without Acquire: nothing to undo
	}
	e.conns--
	if e.conns == 0 && l.idleLocked(e, now) {
		delete(l.keys, k)
		return
	}
	l.keys[k] = e
}

// Allow takes one token of addr's bucket and reports whether there was one.
// With no Rate configured it always allows.
func (l *Limiter) Allow(addr netip.Addr) bool {
	if l == nil || l.cfg.Rate == 0 {
		return true
	}
	k := Key(addr, l.cfg.IPv6Prefix)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[k]
	if !ok {
		if !l.roomLocked(now) {
			l.fullRefused.Add(1)
			return false
		}
		e = l.freshLocked(now)
	}
	l.refill(&e, now)
	allowed := e.tokens >= 1
	if allowed {
		e.tokens--
	} else {
		l.rateRefused.Add(1)
	}
	l.keys[k] = e
	return allowed
}

// Stats returns what the Limiter has refused so far and how many addresses
// it tracks.
func (l *Limiter) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	l.mu.Lock()
	n := len(l.keys)
	l.mu.Unlock()
	return Stats{
		ConnsRefused: l.connsRefused.Load(),
		RateRefused:  l.rateRefused.Load(),
		FullRefused:  l.fullRefused.Load(),
		Keys:         n,
	}
}

func (l *Limiter) freshLocked(now time.Time) entry {
	return entry{tokens: float64(l.cfg.Burst), last: now}
}

func (l *Limiter) refill(e *entry, now time.Time) {
	if d := now.Sub(e.last); d > 0 {
		e.tokens = min(float64(l.cfg.Burst), e.tokens+d.Seconds()*l.cfg.Rate)
		e.last = now
	}
}

// idleLocked reports whether e carries nothing worth keeping at now: no
// connection, and a bucket that is full again.
func (l *Limiter) idleLocked(e entry, now time.Time) bool {
	if e.conns > 0 {
		return false
	}
	if l.cfg.Rate == 0 {
		return true
	}
	l.refill(&e, now)
	return e.tokens >= float64(l.cfg.Burst)
}

// roomLocked reports whether a new key fits, sweeping idle keys out of a
// full table at most once per pruneEvery.
func (l *Limiter) roomLocked(now time.Time) bool {
	if len(l.keys) < l.cfg.MaxKeys {
		return true
	}
	if !l.lastPrune.IsZero() && now.Sub(l.lastPrune) < pruneEvery {
		return false
	}
	l.lastPrune = now
	for k, e := range l.keys {
		if l.idleLocked(e, now) {
			delete(l.keys, k)
		}
	}
	return len(l.keys) < l.cfg.MaxKeys
}
