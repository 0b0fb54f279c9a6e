// Package transit implements magic-wormhole's transit protocol: the TCP
// connection over which a file is sent once two sides met through the
// wormhole (package wormhole) and share its transit key. It is specified
// in transit.md of https://github.com/magic-wormhole/magic-wormhole-protocols.
//
// Each side announces hints (Message): direct-tcp-v1 addresses where it
// listens, and relay-v1 transit relays. Both sides then try every way at
// once: they dial the peer's direct hints, accept on their own listener,
// and (after a short delay when a direct path may work) connect to the
// relays with "please relay TOKEN for side SIDE\n". On every connection
// each side sends its handshake ("transit sender HEX ready\n\n" or
// "transit receiver HEX ready\n\n"); the sender picks the first connection
// whose handshake completes and says "go\n" on it and "nevermind\n" on the
// others. The winner then carries records (Conn): a 4-byte big-endian
// length, a 24-byte big-endian counter nonce, and a NaCl secretbox under
// the direction's record key.
//
// Nothing here knows the wormhole; the caller passes the transit key and
// exchanges the Messages.
package transit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ErrNoConnection: no hint led to a connection whose handshake completed.
var ErrNoConnection = errors.New("transit: no connection to the peer")

// Config configures a Transit. The zero value is not usable: Key is
// required. It is copied by New.
type Config struct {
	// Role is Sender or Receiver of the data.
	Role Role
	// Key is the transit key (wormhole.Wormhole.TransitKey), 32 bytes.
	Key []byte
	// ListenAddr, when set, is where to listen for the peer's direct
	// connections ("127.0.0.1:0", ":0"); empty means no listener, like
	// magic-wormhole's --no-listen.
	ListenAddr string
	// Relays are transit relays (host:port) to announce and use.
	Relays []string
	// RelayDelay is how long to wait before trying relays when a direct
	// connection may work; zero means 2 s (magic-wormhole's), negative
	// means no delay.
	RelayDelay time.Duration
	// Timeout bounds Connect; zero means 2 minutes.
	Timeout time.Duration
	// Logger receives debug logs; nil means silent.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if len(c.Key) != 32 {
		return fmt.Errorf("transit: key of %d bytes, want 32", len(c.Key))
	}
	if c.Role != Sender && c.Role != Receiver {
		return fmt.Errorf("transit: unknown role %d", c.Role)
	}
	for _, r := range c.Relays {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("transit: relay %q: %w", r, err)
		}
	}
	if c.Timeout < 0 {
		return errors.New("transit: negative Timeout")
	}
	return nil
}

// Transit is one side's attempt to connect to its peer, for one transfer.
// Create it with New, send Message to the peer, call Connect with the
// peer's message, and Close it. Its methods are safe for concurrent use.
type Transit struct {
	cfg  Config
	side string
	ln   net.Listener // nil without ListenAddr

	closeOnce sync.Once
}

// New validates cfg and opens the listener if ListenAddr is set. It starts
// no goroutine.
func New(cfg Config) (*Transit, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Key = slices.Clone(cfg.Key)
	cfg.Relays = slices.Clone(cfg.Relays)
	if cfg.RelayDelay == 0 {
		cfg.RelayDelay = 2 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var side [8]byte
	if _, err := rand.Read(side[:]); err != nil {
		return nil, err
	}
	t := &Transit{cfg: cfg, side: hex.EncodeToString(side[:])}
	if cfg.ListenAddr != "" {
		ln, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("transit: %w", err)
		}
		t.ln = ln
	}
	return t, nil
}

// Close closes the listener. It may be called more than once.
func (t *Transit) Close() error {
	t.closeOnce.Do(func() {
		if t.ln != nil {
			t.ln.Close()
		}
	})
	return nil
}

// Message returns our abilities and hints, to send to the peer inside the
// wormhole as {"transit": ...}.
func (t *Transit) Message() Message {
	m := Message{Abilities: []Ability{{Type: TypeDirectTCP}, {Type: TypeRelay}}, Hints: []Hint{}}
	if t.ln != nil {
		for _, ap := range listenAddrs(t.ln) {
			m.Hints = append(m.Hints, DirectHint(ap, 0))
		}
	}
	for _, r := range t.cfg.Relays {
		host, port, _ := net.SplitHostPort(r)
		p, _ := net.LookupPort("tcp", port)
		m.Hints = append(m.Hints, Hint{Type: TypeRelay, Hints: []Hint{{Type: TypeDirectTCP, Hostname: host, Port: p}}})
	}
	return m
}

// listenAddrs returns the addresses that reach ln: its own, or every
// interface address when it listens on all of them (loopback only when
// there is nothing else).
func listenAddrs(ln net.Listener) []netip.AddrPort {
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return nil
	}
	if !ap.Addr().IsUnspecified() {
		return []netip.AddrPort{ap}
	}
	ifAddrs, _ := net.InterfaceAddrs()
	var out, loop []netip.AddrPort
	for _, a := range ifAddrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		cand := netip.AddrPortFrom(p.Addr().Unmap(), ap.Port())
		if p.Addr().IsLoopback() {
			loop = append(loop, cand)
		} else {
			out = append(out, cand)
		}
	}
	if len(out) == 0 {
		return loop
	}
	return out
}

// Connect tries every way to the peer at once (its direct hints, our
// listener, the relays of both) and returns the first connection whose
// handshake completes. Every other attempt is stopped, and the listener
// closed, before Connect returns: a Transit connects once.
func (t *Transit) Connect(ctx context.Context, peer *Message) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	r := &race{t: t, ctx: ctx, won: make(chan *Conn, 1)}

	var direct []string
	if peer.has(TypeDirectTCP) {
		for _, h := range peer.Hints {
			if h.Type == TypeDirectTCP {
				direct = append(direct, h.Addr())
			}
		}
	}
	relays := slices.Clone(t.cfg.Relays)
	if peer.has(TypeRelay) {
		for _, h := range peer.Hints {
			if h.Type == TypeRelay {
				for _, d := range h.Hints {
					relays = append(relays, d.Addr())
				}
			}
		}
	}
	slices.Sort(relays)
	relays = slices.Compact(relays)
	delay := time.Duration(0)
	if (len(direct) > 0 || t.ln != nil) && t.cfg.RelayDelay > 0 {
		delay = t.cfg.RelayDelay
	}
	for _, a := range direct {
		r.start(func() { r.dial(a, "direct "+a, false, 0) })
	}
	for _, a := range relays {
		r.start(func() { r.dial(a, "relay "+a, true, delay) })
	}
	acceptDone := make(chan struct{})
	if t.ln != nil {
		go func() {
			defer close(acceptDone)
			for {
				c, err := t.ln.Accept()
				if err != nil {
					return
				}
				r.start(func() { r.handshake(c, "direct (accepted from "+c.RemoteAddr().String()+")", false) })
			}
		}()
	} else {
		close(acceptDone)
	}
	allDone := make(chan struct{})
	go func() {
		<-acceptDone
		r.wg.Wait()
		close(allDone)
	}()
	finish := func() {
		cancel()
		t.Close()
		<-allDone
	}
	var c *Conn
	select {
	case c = <-r.won:
	case <-allDone:
	case <-ctx.Done():
	}
	finish()
	if c == nil {
		select {
		case c = <-r.won: // won while the others were stopping
		default:
			return nil, t.failure(ctx, r)
		}
	}
	t.cfg.Logger.Debug("transit: connected", "via", c.desc)
	return c, nil
}

func (t *Transit) failure(ctx context.Context, r *race) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil && len(r.errs) == 0 {
		return fmt.Errorf("%w: %w", ErrNoConnection, ctx.Err())
	}
	return fmt.Errorf("%w: %w", ErrNoConnection, errors.Join(r.errs...))
}

// race is one Connect's set of attempts.
type race struct {
	t   *Transit
	ctx context.Context
	wg  sync.WaitGroup
	won chan *Conn // the winner, once

	mu     sync.Mutex
	winner bool
	errs   []error
}

func (r *race) start(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

func (r *race) fail(desc string, err error) {
	r.t.cfg.Logger.Debug("transit: attempt failed", "via", desc, "err", err)
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Errorf("%s: %w", desc, err))
	r.mu.Unlock()
}

// dial connects to addr after delay and runs the handshake.
func (r *race) dial(addr, desc string, relay bool, delay time.Duration) {
	if delay > 0 {
		tm := time.NewTimer(delay)
		select {
		case <-r.ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
	}
	var d net.Dialer
	c, err := d.DialContext(r.ctx, "tcp", addr)
	if err != nil {
		r.fail(desc, err)
		return
	}
	r.handshake(c, desc, relay)
}

// handshake runs the relay request (if relay) and the transit handshake on
// c, and makes c the winner if it is the first.
func (r *race) handshake(c net.Conn, desc string, relay bool) {
	// Cancelling the race interrupts blocked reads and writes.
	stop := context.AfterFunc(r.ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err := r.exchange(c, relay)
	if err == nil && !stop() {
		err = r.ctx.Err()
	}
	if err != nil {
		c.Close()
		r.fail(desc, err)
		return
	}
	c.SetDeadline(time.Time{})
	r.won <- newConn(c, r.t.cfg.Key, r.t.cfg.Role, desc)
}

func (r *race) exchange(c net.Conn, relay bool) error {
	key, role := r.t.cfg.Key, r.t.cfg.Role
	peerRole := Receiver
	if role == Receiver {
		peerRole = Sender
	}
	if relay {
		if _, err := c.Write(relayHandshake(key, r.t.side)); err != nil {
			return err
		}
		if err := expect(c, lineRelayOK); err != nil {
			return fmt.Errorf("transit relay: %w", err)
		}
	}
	if _, err := c.Write(handshake(key, role)); err != nil {
		return err
	}
	if err := expect(c, handshake(key, peerRole)); err != nil {
		return err
	}
	if role == Receiver {
		if err := expectGo(c); err != nil {
			return err
		}
		return r.claim()
	}
	if err := r.claim(); err != nil {
		_, _ = c.Write(lineNevermind)
		return err
	}
	_, err := c.Write(lineGo)
	return err
}

// claim makes the caller the winner, or fails if there is one.
func (r *race) claim() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.winner {
		return errors.New("another connection won")
	}
	r.winner = true
	return nil
}
