// Package transitrelay is a magic-wormhole transit relay: a TCP service
// that pairs two connections presenting the same token and copies bytes
// between them, for two clients that cannot reach each other directly.
//
// It speaks the relay handshake of magic-wormhole's transit protocol
// (https://github.com/magic-wormhole/magic-wormhole-protocols, transit.md):
// each side sends "please relay TOKEN for side SIDE\n" (TOKEN and SIDE in
// hex; the older form without "for side" is accepted too), the relay
// pairs two connections with the same token and different sides, answers
// "ok\n" to both, and from then on copies bytes blindly; the end-to-end
// encryption is the clients' business. Beyond the reference relay it
// bounds how long a side waits for its partner, the bytes and the time of
// each pair, and the connections of each client address (internal/iplimit),
// and it counts what it relays: Stats, and one Info usage record per pair.
package transitrelay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxWait          = 2 * time.Minute
	DefaultMaxBytes         = 4 << 30
	DefaultMaxDuration      = 2 * time.Hour
	DefaultConnsPerIP       = 32
	DefaultHandshakeTimeout = 30 * time.Second
	maxHandshake            = 256 // bytes of the handshake line
	maxWaitersPerToken      = 2
	copyBuffer              = 64 << 10
)

// Config configures a Relay. Its zero value is usable: every limit of 0
// means its default.
type Config struct {
	MaxWait          time.Duration // how long a side waits for its partner
	MaxBytes         int64         // bytes per pair, both directions together
	MaxDuration      time.Duration // life of a pair
	ConnsPerIP       int           // connections per client address, waiting or relaying
	HandshakeTimeout time.Duration // time to send the handshake line
	IPv6Prefix       int           // IPv6 clients are counted per prefix; 0 = /64
	Logger           *slog.Logger  // nil: silent
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.MaxWait < 0 || c.MaxBytes < 0 || c.MaxDuration < 0 || c.ConnsPerIP < 0 || c.HandshakeTimeout < 0 {
		return errors.New("transitrelay: a negative limit")
	}
	return iplimit.Config{IPv6Prefix: c.IPv6Prefix}.Validate()
}

// Stats counts what a Relay did. Counters only grow; Waiting and Pairs
// are gauges.
type Stats struct {
	Accepted     uint64 // connections accepted
	Refused      uint64 // refused by the per-address limit
	BadHandshake uint64 // closed for a malformed or missing handshake
	Lonely       uint64 // gave up waiting for a partner
	Paired       uint64 // pairs made
	OverBudget   uint64 // pairs cut for exceeding MaxBytes or MaxDuration
	Bytes        uint64 // bytes relayed, both directions
	Waiting      int    // connections waiting for a partner now
	Pairs        int    // pairs relaying now
}

// Relay is a transit relay. Create it with New, run it with Serve, stop it
// by cancelling Serve's context. Its methods are safe for concurrent use.
type Relay struct {
	cfg   Config
	limit *iplimit.Limiter
	log   *slog.Logger

	accepted, refused, bad, lonely, paired, over, bytes atomic.Uint64
	pairs                                               atomic.Int64

	mu      sync.Mutex
	waiting map[string][]*waiter  // by token; guarded by mu
	nWait   int                   // guarded by mu
	conns   map[net.Conn]struct{} // every open connection; guarded by mu
}

// waiter is a connection that sent its handshake and waits for a partner.
type waiter struct {
	c       net.Conn
	side    string
	client  netip.Addr
	arrived time.Time
	partner chan *waiter // receives the partner once paired
}

// New returns a relay for cfg. It starts nothing.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	def(&cfg.MaxWait, DefaultMaxWait)
	def(&cfg.MaxDuration, DefaultMaxDuration)
	def(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.ConnsPerIP == 0 {
		cfg.ConnsPerIP = DefaultConnsPerIP
	}
	lim, err := iplimit.New(iplimit.Config{MaxConns: cfg.ConnsPerIP, IPv6Prefix: cfg.IPv6Prefix})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg, limit: lim, log: log, waiting: map[string][]*waiter{}, conns: map[net.Conn]struct{}{}}, nil
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every connection and returns when all its goroutines have exited.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		r.mu.Lock()
		for c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
	})
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			cancel()
			return err
		}
		if !r.track(c, ctx) {
			continue
		}
		wg.Go(func() { r.handle(ctx, c) })
	}
}

// track registers c for closing at shutdown; false if shutdown began.
func (r *Relay) track(c net.Conn, ctx context.Context) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

// handle runs one connection: the handshake, the wait, and for the second
// side of a pair, the relaying.
func (r *Relay) handle(ctx context.Context, c net.Conn) {
	defer r.untrack(c)
	r.accepted.Add(1)
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	client := ap.Addr().Unmap()
	if err := r.limit.Acquire(client); err != nil {
		r.refused.Add(1)
		io.WriteString(c, "error: too many connections from your address\n")
		return
	}
	defer r.limit.Release(client)

	c.SetReadDeadline(time.Now().Add(r.cfg.HandshakeTimeout))
	token, side, err := readHandshake(c)
	if err != nil {
		r.bad.Add(1)
		io.WriteString(c, "bad handshake\n")
		return
	}
	c.SetReadDeadline(time.Time{})
	me := &waiter{c: c, side: side, client: client, arrived: time.Now(), partner: make(chan *waiter, 1)}
	first := r.match(token, me)
	if first == errCrowded {
		r.bad.Add(1)
		io.WriteString(c, "error: this token already has connections waiting\n")
		return
	}
	if first == nil { // wait for a partner, who will relay
		timer := time.NewTimer(r.cfg.MaxWait)
		defer timer.Stop()
		select {
		case p := <-me.partner:
			<-p.partner // the partner's relaying is over
		case <-timer.C:
			if r.unwait(token, me) {
				r.lonely.Add(1)
				return
			}
			p := <-me.partner // paired meanwhile
			<-p.partner
		case <-ctx.Done():
			r.unwait(token, me)
		}
		return
	}
	r.relay(first, me)
	close(me.partner) // lets first's handler return
}

// readHandshake reads "please relay TOKEN for side SIDE\n" or "please
// relay TOKEN\n", one byte at a time so as not to read past the newline.
func readHandshake(c net.Conn) (token, side string, err error) {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return "", "", err
		}
		if b[0] == '\n' {
			break
		}
		if len(line) >= maxHandshake {
			return "", "", errors.New("handshake too long")
		}
		line = append(line, b[0])
	}
	return parseHandshake(string(line))
}

// parseHandshake parses a handshake line without its newline.
func parseHandshake(line string) (token, side string, err error) {
	rest, ok := strings.CutPrefix(line, "please relay ")
	if !ok {
		return "", "", errors.New("no 'please relay'")
	}
	token, side, hasSide := strings.Cut(rest, " for side ")
	if !isHex(token) || hasSide && !isHex(side) {
		return "", "", errors.New("token or side is not hex")
	}
	return token, side, nil
}

func isHex(s string) bool {
	return s != "" && len(s) <= 128 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// match pairs me with a waiter of the same token and another side and
// returns it, or queues me and returns nil, or returns errCrowded.
func (r *Relay) match(token string, me *waiter) *waiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.waiting[token]
	for i, w := range ws {
		if w.side == "" || me.side == "" || w.side != me.side {
			r.removeLocked(token, i)
			return w
		}
	}
	if len(ws) >= maxWaitersPerToken {
		return errCrowded
	}
	r.waiting[token] = append(r.waiting[token], me)
	r.nWait++
	return nil
}

// errCrowded is the sentinel waiter match returns when the token already
// has maxWaitersPerToken connections of the same side waiting.
var errCrowded = &waiter{}

func (r *Relay) removeLocked(token string, i int) {
	ws := r.waiting[token]
	ws = append(ws[:i:i], ws[i+1:]...)
	if len(ws) == 0 {
		delete(r.waiting, token)
	} else {
		r.waiting[token] = ws
	}
	r.nWait--
}

// unwait removes me from the queue; false if it was paired (or dropped)
// meanwhile.
func (r *Relay) unwait(token string, me *waiter) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, w := range r.waiting[token] {
		if w == me {
			r.removeLocked(token, i)
			return true
		}
	}
	return false
}

// relay connects a (which waited) and b, and copies until both
// directions end, the budget is spent or the time is up.
func (r *Relay) relay(a, b *waiter) {
	a.partner <- b
	r.paired.Add(1)
	r.pairs.Add(1)
	defer r.pairs.Add(-1)
	start := time.Now()
	for _, c := range []net.Conn{a.c, b.c} {
		c.SetDeadline(start.Add(r.cfg.MaxDuration))
		io.WriteString(c, "ok\n")
	}
	p := &pair{budget: r.cfg.MaxBytes, a: a.c, b: b.c}
	var wg sync.WaitGroup
	var toB uint64
	wg.Go(func() { toB = r.pipe(p, b.c, a.c) })
	toA := r.pipe(p, a.c, b.c)
	wg.Wait()
	why := "done"
	switch {
	case p.over.Load():
		why = "byte budget"
		r.over.Add(1)
	case time.Since(start) >= r.cfg.MaxDuration:
		why = "time budget"
		r.over.Add(1)
	}
	r.log.Info("transit relay pair ended", "a", a.client.String(), "b", b.client.String(),
		"waiting", b.arrived.Sub(a.arrived).Round(time.Millisecond), "duration", time.Since(start).Round(time.Millisecond),
		"a_to_b_bytes", toB, "b_to_a_bytes", toA, "reason", why)
}

// pair is the shared state of a relayed pair.
type pair struct {
	mu     sync.Mutex
	budget int64 // guarded by mu: bytes left
	over   atomic.Bool
	a, b   net.Conn
}

// take spends n bytes of the budget and reports whether they were there.
func (p *pair) take(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.budget -= int64(n)
	return p.budget >= 0
}

// pipe copies src to dst until EOF (then half-closes dst), an error or the
// budget (then closes both), and returns the bytes copied.
func (r *Relay) pipe(p *pair, dst, src net.Conn) uint64 {
	buf := make([]byte, copyBuffer)
	var n uint64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if !p.take(k) {
				p.over.Store(true)
				p.a.Close()
				p.b.Close()
				return n
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				p.a.Close()
				p.b.Close()
				return n
			}
			n += uint64(k)
			r.bytes.Add(uint64(k))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
					return n
				}
			}
			p.a.Close()
			p.b.Close()
			return n
		}
	}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	w := r.nWait
	r.mu.Unlock()
	return Stats{
		Accepted: r.accepted.Load(), Refused: r.refused.Load(), BadHandshake: r.bad.Load(), Lonely: r.lonely.Load(),
		Paired: r.paired.Load(), OverBudget: r.over.Load(), Bytes: r.bytes.Load(), Waiting: w, Pairs: int(r.pairs.Load()),
	}
}
