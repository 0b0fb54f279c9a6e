package peer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quic-go/quic-go"
)

// A transfer is one bidirectional QUIC stream that the sending side opens:
//
//	sender   -> offer {"kind":"file","name":N,"size":S}
//	receiver -> answer {"accept":true} | {"accept":false,"reason":R}
//	sender   -> S bytes of data, then done {"sha256":HEX}
//	receiver -> ack {"ok":true,"sha256":HEX} | {"ok":false,"error":E}
//
// Control messages are frames (frame.go). The receiver hashes what it
// wrote and compares it with the sender's hash: the end-to-end check, on
// top of QUIC's own integrity.

// Kinds of offer.
const (
	KindFile    = "file"
	KindPipe    = "pipe"
	KindForward = "forward"
)

// Offer describes what a sender offers.
type Offer struct {
	Kind string `json:"kind"`
	// Name is the file's name: one path element (see ValidName).
	Name string `json:"name,omitempty"`
	// Size is the number of bytes of a file.
	Size int64 `json:"size"`
}

// Errors a caller branches on.
var (
	// ErrDeclined: the receiver declined the offer; the error says why.
	ErrDeclined = errors.New("peer: the receiver declined")
	// ErrHashMismatch: the data's SHA-256 differs between the two ends.
	ErrHashMismatch = errors.New("peer: SHA-256 mismatch: the data arrived corrupted")
)

// ValidName checks that a file name offered by a peer is one harmless path
// element: not empty, not "." or "..", no "/" or "\", no NUL or other
// control character, valid UTF-8, at most 255 bytes. A receiver refuses
// other names rather than cleaning them, so that a name can never climb
// out of the directory it saves to.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("peer: file name %q is not a file name", name)
	case len(name) > 255:
		return fmt.Errorf("peer: file name of %d bytes is too long", len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("peer: file name %q is not UTF-8", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("peer: file name %q holds a path separator", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("peer: file name %q holds a control character", name)
		}
	}
	return nil
}

// streamCtx ties s to ctx: when ctx ends, both directions are cancelled,
// which unblocks reads and writes. The returned stop undoes it.
func streamCtx(ctx context.Context, s *quic.Stream) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		s.CancelRead(1)
		s.CancelWrite(1)
	})
}

// countWriter counts and reports what passes through it.
type countWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	if c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

// SendFile offers a file of offer.Size bytes read from r (offer.Kind is
// set to KindFile) on a new stream, waits for the answer and, when the
// receiver accepts, sends the data and waits for its verdict. progress,
// when not nil, is called with the bytes sent so far. It returns the
// SHA-256 both ends agree on, or an error wrapping ErrDeclined or
// ErrHashMismatch.
func (c *Conn) SendFile(ctx context.Context, offer Offer, r io.Reader, progress func(int64)) ([]byte, error) {
	offer.Kind = KindFile
	if err := ValidName(offer.Name); err != nil {
		return nil, err
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer: opening a stream: %w", err)
	}
	defer streamCtx(ctx, s)()
	defer s.Close()
	if err := writeFrame(s, &message{Offer: &offer}); err != nil {
		return nil, fmt.Errorf("peer: sending the offer: %w", err)
	}
	m, err := readFrame(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("peer: waiting for the answer: %w", err)
	case m.Answer == nil:
		return nil, errors.New("peer: the receiver answered something else than an answer")
	case !m.Answer.Accept:
		return nil, fmt.Errorf("%w: %s", ErrDeclined, m.Answer.Reason)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(s, h), progress: progress}
	n, err := io.Copy(cw, io.LimitReader(r, offer.Size))
	if err != nil {
		return nil, fmt.Errorf("peer: sending: %w", err)
	}
	if n != offer.Size {
		return nil, fmt.Errorf("peer: the file shrank: %d of %d bytes", n, offer.Size)
	}
	sum := h.Sum(nil)
	if err := writeFrame(s, &message{Done: &done{SHA256: hex.EncodeToString(sum)}}); err != nil {
		return nil, fmt.Errorf("peer: sending: %w", err)
	}
	m, err = readFrame(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("peer: waiting for the receiver's check: %w", err)
	case m.Ack == nil:
		return nil, errors.New("peer: the receiver answered something else than an ack")
	case !m.Ack.OK:
		return nil, fmt.Errorf("peer: the receiver says: %s", m.Ack.Error)
	case m.Ack.SHA256 != hex.EncodeToString(sum):
		return nil, fmt.Errorf("%w: sent %x, the receiver has %s", ErrHashMismatch, sum, m.Ack.SHA256)
	}
	return sum, nil
}

// Incoming is an offer received from the peer, to Accept or Decline once.
type Incoming struct {
	Offer Offer
	s     *quic.Stream
}

// ReceiveOffer waits for the peer's next offer.
func (c *Conn) ReceiveOffer(ctx context.Context) (*Incoming, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer: waiting for an offer: %w", err)
	}
	stop := streamCtx(ctx, s)
	m, err := readFrame(s)
	stop()
	if err == nil && m.Offer == nil {
		err = errors.New("peer: the first message on the stream is not an offer")
	}
	if err != nil {
		s.CancelRead(2)
		s.CancelWrite(2)
		return nil, err
	}
	return &Incoming{Offer: *m.Offer, s: s}, nil
}

// Decline tells the sender why the offer is refused, and waits (at most
// lingerTimeout) until the sender has read it.
func (in *Incoming) Decline(reason string) error {
	err := writeFrame(in.s, &message{Answer: &answer{Reason: reason}})
	in.s.Close()
	linger(in.s)
	return err
}

// lingerTimeout bounds linger.
const lingerTimeout = 5 * time.Second

// linger waits until the sender closes its side of s, which it does once it
// has read our last message, so that closing the connection right after
// cannot discard that message. It gives up after lingerTimeout.
func linger(s *quic.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, s)
}

// Accept accepts a file offer and writes its data to w, calling progress
// (when not nil) with the bytes received so far. It returns the SHA-256
// of the data once it matches the sender's, or an error wrapping
// ErrHashMismatch; either way the sender learns the verdict.
func (in *Incoming) Accept(ctx context.Context, w io.Writer, progress func(int64)) ([]byte, error) {
	s := in.s
	defer streamCtx(ctx, s)()
	defer s.Close()
	if err := writeFrame(s, &message{Answer: &answer{Accept: true}}); err != nil {
		return nil, fmt.Errorf("peer: accepting: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h), progress: progress}
	n, err := io.Copy(cw, io.LimitReader(s, in.Offer.Size))
	if err == nil && n != in.Offer.Size {
		err = fmt.Errorf("the sender stopped after %d of %d bytes", n, in.Offer.Size)
	}
	if err != nil {
		_ = writeFrame(s, &message{Ack: &ack{Error: err.Error()}})
		return nil, fmt.Errorf("peer: receiving: %w", err)
	}
	m, err := readFrame(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("peer: waiting for the sender's hash: %w", err)
	case m.Done == nil:
		return nil, errors.New("peer: the sender sent something else than its hash after the data")
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if m.Done.SHA256 != sum {
		_ = writeFrame(s, &message{Ack: &ack{Error: "SHA-256 mismatch: received " + sum}})
		return nil, fmt.Errorf("%w: received %s, the sender sent %s", ErrHashMismatch, sum, m.Done.SHA256)
	}
	if err := writeFrame(s, &message{Ack: &ack{OK: true, SHA256: sum}}); err != nil {
		return nil, fmt.Errorf("peer: confirming: %w", err)
	}
	s.Close()
	linger(s)
	return h.Sum(nil), nil
}
