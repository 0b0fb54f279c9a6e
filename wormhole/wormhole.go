// Package wormhole is a client of magic-wormhole's rendezvous: it talks to a
// mailbox server over WebSocket, runs SPAKE2 on a short code with the peer
// (package wormhole/spake2) and then exchanges messages sealed with NaCl
// secretbox under keys derived from the SPAKE2 key. It is compatible with
// magic-wormhole 0.12 and wormhole-william, and with their mailbox server.
//
// The protocols are specified in
// https://github.com/magic-wormhole/magic-wormhole-protocols:
// server-protocol.md (the mailbox commands: bind, allocate, claim, open,
// add, release, close) and client-protocol.md (the pake and version phases,
// key derivation, numbered phases). The real peers decide where the specs
// are vague: frames are TEXT, not binary, and the server neither orders nor
// de-duplicates messages, so a client does both.
//
// Besides the standard protocol, a Wormhole can ask an icebreaker mailbox
// server for ICE servers with ephemeral TURN credentials (ICEServers); a
// plain server refuses that command.
//
// The package knows nothing of ICE; the transit protocol for bulk data is
// in package wormhole/transit.
package wormhole

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/wormhole/spake2"
)

// AppID is magic-wormhole's application id for text and file transfer,
// which every compatible client uses.
const AppID = "lothar.com/wormhole/text-or-file-xfer"

// DefaultRendezvousURL is magic-wormhole's public mailbox server.
const DefaultRendezvousURL = "ws://relay.magic-wormhole.io:4000/v1"

// Errors a caller branches on; match them with errors.Is.
var (
	// ErrWrongCode: key confirmation failed. The peer's first sealed
	// message did not open with our key, so the peer typed another code
	// (or someone guessed wrong). The mood is "scary".
	ErrWrongCode = errors.New("wormhole: key confirmation failed (wrong code?)")
	// ErrCrowded: the nameplate or mailbox already has two other sides.
	ErrCrowded = errors.New("wormhole: the nameplate is crowded (already used by two other sides)")
	// ErrServerGone: the mailbox server cannot be reached, or the
	// connection dropped and reconnecting failed for Config.Reconnect.
	ErrServerGone = errors.New("wormhole: no connection to the mailbox server")
	// ErrTimeout: a wait took longer than Config.Timeout or the caller's
	// deadline.
	ErrTimeout = errors.New("wormhole: timed out")
	// ErrClosed: the Wormhole was closed.
	ErrClosed = errors.New("wormhole: closed")
	// ErrICENotOffered: the mailbox server does not hand out ICE servers
	// (a plain magic-wormhole server), or refused the token.
	ErrICENotOffered = errors.New("wormhole: the mailbox server does not offer ICE servers")
)

// Mood is how a side feels when it closes its mailbox (server-protocol.md).
type Mood string

// The moods magic-wormhole defines.
const (
	Happy  Mood = "happy"  // the exchange succeeded
	Lonely Mood = "lonely" // the peer never showed up
	Scary  Mood = "scary"  // key confirmation failed: someone may have guessed
	Errory Mood = "errory" // something else went wrong
)

// Config configures a Wormhole. The zero value is usable: magic-wormhole's
// public server, its application id, two-word codes. It is copied by
// Allocate and Join.
type Config struct {
	// URL is the mailbox server's WebSocket URL; empty means
	// DefaultRendezvousURL.
	URL string
	// AppID is the application id; empty means AppID. Both peers must use
	// the same one.
	AppID string
	// Words is the number of words in an allocated code; zero means 2.
	Words int
	// Timeout bounds every wait (for the server, for the peer); zero
	// means 10 minutes, about how long the reference server keeps an idle
	// mailbox.
	Timeout time.Duration
	// Reconnect is how long to keep trying to reconnect after the
	// connection to the server drops; zero means 30 seconds. Past it every
	// wait returns ErrServerGone.
	Reconnect time.Duration
	// AppVersions is sent to the peer in the version phase; nil means {}.
	AppVersions map[string]any
	// ClientVersion is sent to the server in bind as ["icebreaker",
	// ClientVersion]; empty means "dev".
	ClientVersion string
	// MaxMessageSize caps a frame from the server; zero means 1 MiB.
	MaxMessageSize int64
	// Logger receives debug logs; nil means silent.
	Logger *slog.Logger
	// Rand is the randomness for the side, the code and SPAKE2; nil
	// means crypto/rand.Reader.
	Rand io.Reader
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return fmt.Errorf("wormhole: rendezvous URL: %w", err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return fmt.Errorf("wormhole: rendezvous URL %q: scheme must be ws or wss", c.URL)
		}
	}
	if c.Words < 0 || c.Words > 16 {
		return fmt.Errorf("wormhole: Words %d out of range 0..16", c.Words)
	}
	if c.Timeout < 0 || c.Reconnect < 0 || c.MaxMessageSize < 0 {
		return errors.New("wormhole: negative Timeout, Reconnect or MaxMessageSize")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultRendezvousURL
	}
	if c.AppID == "" {
		c.AppID = AppID
	}
	if c.Words == 0 {
		c.Words = 2
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Reconnect == 0 {
		c.Reconnect = 30 * time.Second
	}
	if c.ClientVersion == "" {
		c.ClientVersion = "dev"
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	return c
}

// Wormhole is one side of a magic-wormhole session. Its methods are safe for
// concurrent use, though Send and Receive each deliver in order only to one
// caller at a time. Create it with Allocate or Join; Close it.
type Wormhole struct {
	cfg  Config
	side string

	stop context.CancelFunc // stops run
	done chan struct{}      // closed when run has returned

	iceMu sync.Mutex // one ICEServers request at a time

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever the state changes
	fatal   error         // the session is over; every wait returns it
	st      session
}

// Allocate connects to the mailbox server, allocates a nameplate and makes
// a code for it (Code), claims and opens the mailbox and sends the PAKE
// message. It returns once the mailbox is open; the peer may come later.
func Allocate(ctx context.Context, cfg Config) (*Wormhole, error) {
	return start(ctx, cfg, nil)
}

// Join connects to the mailbox server with a code that the peer allocated
// (or that both sides agreed on), claims and opens the mailbox and sends
// the PAKE message. It returns once the mailbox is open.
func Join(ctx context.Context, cfg Config, code string) (*Wormhole, error) {
	c, err := ParseCode(code)
	if err != nil {
		return nil, err
	}
	return start(ctx, cfg, &c)
}

func start(ctx context.Context, cfg Config, code *Code) (*Wormhole, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var sideBytes [5]byte
	if _, err := io.ReadFull(cfg.Rand, sideBytes[:]); err != nil {
		return nil, fmt.Errorf("wormhole: reading randomness: %w", err)
	}
	w := &Wormhole{
		cfg:     cfg,
		side:    hex.EncodeToString(sideBytes[:]),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	w.st.processed = map[string]bool{}
	w.st.inbound = map[int][]byte{}
	if code != nil {
		if err := w.setCodeLocked(*code); err != nil {
			return nil, err
		}
	} else {
		w.st.allocating = true
	}
	conn, welcome, err := w.connect(ctx)
	if err != nil {
		return nil, err
	}
	w.st.motd = welcome.MOTD
	runCtx, stop := context.WithCancel(context.Background())
	w.stop = stop
	w.mu.Lock()
	w.resumeLocked(conn)
	w.mu.Unlock()
	go w.run(runCtx, conn)
	err = w.wait(ctx, "the mailbox", func() bool { return w.st.mailbox != "" })
	if err != nil {
		w.shutdown()
		return nil, err
	}
	return w, nil
}

// Code returns the code: the one given to Join, or the one Allocate made.
func (w *Wormhole) Code() Code {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.code
}

// Side returns this side's random identifier in the mailbox.
func (w *Wormhole) Side() string { return w.side }

// MOTD returns the server's message of the day, if its welcome had one.
func (w *Wormhole) MOTD() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.motd
}

// Verifier waits until the peer's first sealed message (its version)
// opened with our key, which confirms that both sides have the same key,
// and returns the verifier: a hash of the key that both users may compare
// out of band. It returns ErrWrongCode when the peer used another code.
func (w *Wormhole) Verifier(ctx context.Context) ([]byte, error) {
	var key []byte
	err := w.wait(ctx, "the peer's key confirmation", func() bool {
		key = w.st.key
		return w.st.verified
	})
	if err != nil {
		return nil, err
	}
	return DeriveKey(key, purposeVerifier), nil
}

// PeerAppVersions waits for key confirmation and returns the peer's
// app_versions object (JSON; {} for magic-wormhole 0.12).
func (w *Wormhole) PeerAppVersions(ctx context.Context) (json.RawMessage, error) {
	if _, err := w.Verifier(ctx); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.peerVersions, nil
}

// TransitKey waits for the SPAKE2 key and returns the key of
// magic-wormhole's transit protocol (package wormhole/transit).
func (w *Wormhole) TransitKey(ctx context.Context) ([]byte, error) {
	return w.DeriveKey(ctx, purposeTransit)
}

// DeriveKey waits for the SPAKE2 key and derives a KeySize-byte key for
// purpose from it (HKDF-SHA256), as magic-wormhole's derive_key does.
func (w *Wormhole) DeriveKey(ctx context.Context, purpose string) ([]byte, error) {
	var key []byte
	err := w.wait(ctx, "the PAKE key", func() bool {
		key = w.st.key
		return key != nil
	})
	if err != nil {
		return nil, err
	}
	return DeriveKey(key, purpose), nil
}

// Send seals msg for the next numbered phase (0, 1, ...) and adds it to the
// mailbox. It waits for the SPAKE2 key (the peer's PAKE message), not for
// the peer to read it. If the connection drops, the message is sent again
// after reconnecting.
func (w *Wormhole) Send(ctx context.Context, msg []byte) error {
	var key []byte
	err := w.wait(ctx, "the PAKE key", func() bool {
		key = w.st.key
		return key != nil
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fatal != nil {
		return w.fatal
	}
	phase := strconv.Itoa(w.st.nextTx)
	w.st.nextTx++
	w.addLocked(phase, seal(phaseKey(key, w.side, phase), msg))
	return nil
}

// Receive returns the peer's next numbered message, in phase order,
// whatever order the server delivered them in and however often.
func (w *Wormhole) Receive(ctx context.Context) ([]byte, error) {
	var msg []byte
	err := w.wait(ctx, "a message from the peer", func() bool {
		m, ok := w.st.inbound[w.st.nextRx]
		if ok {
			delete(w.st.inbound, w.st.nextRx)
			w.st.nextRx++
			msg = m
		}
		return ok
	})
	return msg, err
}

// Close closes the mailbox with the mood that fits how the session went
// (happy after key confirmation, lonely if the peer never came, scary after
// a failed key confirmation, errory after another failure), waits for the
// server to confirm (bounded by ctx and Config.Timeout) and disconnects.
// It may be called more than once; later calls return the first result.
func (w *Wormhole) Close(ctx context.Context) error {
	return w.CloseWith(ctx, "")
}

// CloseWith is Close with the mood chosen by the caller (an application
// that failed after the rendezvous says Errory). An empty mood means the
// automatic one.
func (w *Wormhole) CloseWith(ctx context.Context, mood Mood) error {
	w.closeOnce.Do(func() { w.closeErr = w.close(ctx, mood) })
	return w.closeErr
}

func (w *Wormhole) close(ctx context.Context, mood Mood) error {
	w.mu.Lock()
	if mood == "" {
		mood = w.autoMoodLocked()
	}
	w.st.closeMood = mood
	canClose := w.st.mailbox != "" && w.fatal == nil || errors.Is(w.fatal, ErrWrongCode)
	if canClose {
		if !w.st.releaseSent && w.st.nameplate != "" {
			w.releaseLocked()
		}
		w.sendLocked(map[string]any{"type": "close", "mailbox": w.st.mailbox, "mood": string(mood)})
	}
	w.mu.Unlock()
	var err error
	if canClose {
		err = w.waitClosed(ctx)
	}
	w.shutdown()
	return err
}

// autoMoodLocked picks the mood from the session's state.
func (w *Wormhole) autoMoodLocked() Mood {
	switch {
	case errors.Is(w.fatal, ErrWrongCode):
		return Scary
	case w.fatal != nil:
		return Errory
	case w.st.peerSide == "":
		return Lonely
	}
	return Happy
}

// shutdown stops the run goroutine, closes the connection and waits.
func (w *Wormhole) shutdown() {
	w.mu.Lock()
	if w.fatal == nil {
		w.fatal = ErrClosed
	}
	w.notifyLocked()
	w.mu.Unlock()
	w.stop()
	<-w.done
}

// wait waits until ready (called with w.mu held) returns true, the session
// fails, ctx is done or Config.Timeout passes. ready runs before the
// failure check, so what arrived before a failure is still delivered.
func (w *Wormhole) wait(ctx context.Context, what string, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	for {
		w.mu.Lock()
		ok := ready()
		fatal, ch := w.fatal, w.changed
		w.mu.Unlock()
		if ok {
			return nil
		}
		if fatal != nil {
			return fatal
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w waiting for %s: %w", ErrTimeout, what, ctx.Err())
			}
			return fmt.Errorf("wormhole: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// waitClosed waits for the server's "closed", which also comes after a
// failed key confirmation; only a lost server or shutdown stop it early.
func (w *Wormhole) waitClosed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	for {
		w.mu.Lock()
		closed, fatal, ch := w.st.closed, w.fatal, w.changed
		w.mu.Unlock()
		switch {
		case closed:
			return nil
		case fatal != nil && !errors.Is(fatal, ErrWrongCode):
			return fatal
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w waiting for the server to close the mailbox: %w", ErrTimeout, ctx.Err())
		}
	}
}

// notifyLocked wakes every waiter.
func (w *Wormhole) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// failLocked ends the session with err (the first failure wins).
func (w *Wormhole) failLocked(err error) {
	if w.fatal == nil {
		w.fatal = err
		w.cfg.Logger.Debug("wormhole: session failed", "err", err)
	}
	w.notifyLocked()
}

// setCodeLocked records the code and starts SPAKE2 with it.
func (w *Wormhole) setCodeLocked(c Code) error {
	p, err := spake2.Start([]byte(c.Password), []byte(w.cfg.AppID), w.cfg.Rand)
	if err != nil {
		return err
	}
	w.st.code, w.st.nameplate, w.st.pake = c, c.Nameplate, p
	body, _ := json.Marshal(pakeMessage{PakeV1: hex.EncodeToString(p.Message())})
	w.st.pending = append(w.st.pending, outbound{phase: "pake", body: body})
	return nil
}
