// Package transfer implements magic-wormhole's file-transfer protocol for
// files and directories, as the real `wormhole send` and `wormhole receive`
// speak it: file-transfer-protocol.md of
// https://github.com/magic-wormhole/magic-wormhole-protocols.
//
// Through the wormhole (package wormhole), the sender says where it can be
// reached ({"transit": ...}, package wormhole/transit) and what it offers
// ({"offer": {"file": ...}} or {"offer": {"directory": ...}}); the receiver
// answers with its own transit message and {"answer": {"file_ack": "ok"}},
// or declines with {"error": REASON}. Both then connect by transit, the
// sender sends the bytes in encrypted records, and the receiver's last
// record is {"ack": "ok", "sha256": HEX}, which the sender checks.
//
// A directory travels as a zip file (ZipMode, "zipfile/deflated"), with
// the Unix modes of its files in the entries' external attributes, as
// magic-wormhole builds and unpacks it; WriteZip builds one and Extract
// unpacks one safely (no path outside the target, no links, limits on
// size and count).
//
// Text messages ({"offer": {"message": ...}}) are not handled here.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

// Mailbox is the wormhole between the two sides: *wormhole.Wormhole.
type Mailbox interface {
	// Send seals and sends one message to the peer.
	Send(ctx context.Context, msg []byte) error
	// Receive returns the peer's next message.
	Receive(ctx context.Context) ([]byte, error)
	// TransitKey returns the transit key both sides derive.
	TransitKey(ctx context.Context) ([]byte, error)
}

// ErrDeclined: the peer declined the offer ({"error": ...}) or answered
// with something else than file_ack "ok".
var ErrDeclined = errors.New("transfer: the peer declined")

// Config configures one transfer's transit and reporting. The zero value
// is usable: no listener (only relays connect, like magic-wormhole's
// --no-listen), no relay of our own, the peer's hints all tried.
type Config struct {
	// ListenAddr is where to listen for the peer's direct connections
	// (transit.Config.ListenAddr); "" listens nowhere and offers no
	// direct hint.
	ListenAddr string
	// Relays are transit relays (HOST:PORT) to announce and use.
	Relays []string
	// NoDirect ignores the peer's direct hints: with ListenAddr "" only a
	// relay can connect.
	NoDirect bool
	// NoRelay ignores the peer's relay hints (set no Relays either).
	NoRelay bool
	// RelayDelay and Timeout are transit.Config's (0: its defaults).
	RelayDelay time.Duration
	Timeout    time.Duration
	// OnConnect, when set, is called with how transit connected (as in
	// Result.Via) before data moves; Progress, when set, with the bytes
	// moved so far. Both run on the goroutine that runs Send or Accept.
	OnConnect func(via string)
	Progress  func(done int64)
	// Logger receives debug logs; nil means silent.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.NoRelay && len(c.Relays) > 0 {
		return errors.New("transfer: NoRelay with Relays")
	}
	if c.RelayDelay < 0 || c.Timeout < 0 {
		return errors.New("transfer: negative RelayDelay or Timeout")
	}
	return nil
}

// newTransit makes the transit side of a transfer.
func (c *Config) newTransit(role transit.Role, key []byte) (*transit.Transit, error) {
	return transit.New(transit.Config{Role: role, Key: key, ListenAddr: c.ListenAddr, Relays: c.Relays,
		RelayDelay: c.RelayDelay, Timeout: c.Timeout, Logger: c.Logger})
}

// filter drops the peer's hints that the configuration ignores.
func (c *Config) filter(m *transit.Message) *transit.Message {
	if m == nil {
		return &transit.Message{}
	}
	out := &transit.Message{Abilities: m.Abilities}
	for _, h := range m.Hints {
		switch {
		case h.Type == transit.TypeDirectTCP && c.NoDirect:
		case h.Type == transit.TypeRelay && c.NoRelay:
		default:
			out.Hints = append(out.Hints, h)
		}
	}
	return out
}

// Result is what a finished transfer reports.
type Result struct {
	// Via says how transit connected ("direct 10.0.0.2:40123",
	// "relay 127.0.0.1:4001", "direct (accepted from ...)").
	Via string
	// SHA256 is the hash of the bytes moved, which both sides agree on.
	SHA256 []byte
}

// Relayed reports whether the data went through a transit relay.
func (r Result) Relayed() bool { return strings.HasPrefix(r.Via, "relay") }

// move runs f on c, stopping it when ctx ends.
func move(ctx context.Context, c *transit.Conn, f func() error) error {
	stop := context.AfterFunc(ctx, func() { c.NetConn().SetDeadline(time.Unix(1, 0)) })
	err := f()
	if !stop() && err != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// sending reads the data to send: it hashes it and reports progress.
type sending struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	progress func(int64)
}

func (s *sending) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if s.progress != nil && n > 0 {
		s.progress(s.n)
	}
	return n, err
}

// receiving writes the data received and reports progress (transit
// hashes it).
type receiving struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (r *receiving) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	r.n += int64(n)
	if r.progress != nil {
		r.progress(r.n)
	}
	return n, err
}
