package peer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quic-go/quic-go"
)

// A transfer is one bidirectional QUIC stream that the sending side opens:
//
//	sender   -> offer {"kind":"file","name":N,"size":S,"mode":M}
//	receiver -> answer {"accept":true} | {"accept":false,"reason":R}
//	            | {"accept":true,"resume":{"offset":O,"sha256":H}}
//	sender   -> start {"offset":O or 0}      (only after a resume offer)
//	sender   -> the data, then done {"sha256":HEX}
//	receiver -> ack {"ok":true,"sha256":HEX} | {"ok":false,"error":E}
//
// Control messages are frames (frame.go). The data of a file is its bytes
// from the start offset to its size; a streamed file (standard input,
// "stream":true and no size) sends chunks (chunk.go); a directory
// ("kind":"dir") sends entries (dir.go). The receiver hashes what it got
// and compares it with the sender's hash: the end-to-end check, on top of
// QUIC's own integrity. A resumed file's hash covers the whole file: both
// sides hash the prefix they already have first.

// Kinds of offer.
const (
	KindFile    = "file"
	KindDir     = "dir"
	KindPipe    = "pipe"
	KindForward = "forward"
)

// Offer describes what a sender offers: plain data, copied freely. The
// zero value is not a valid offer; the Send methods set Kind.
type Offer struct {
	Kind string `json:"kind"`
	// Name is the file's or directory's name: one path element (see
	// ValidName).
	Name string `json:"name,omitempty"`
	// Size is the number of bytes of a file, or of all the files of a
	// directory; 0 when Stream is set.
	Size int64 `json:"size"`
	// Mode holds the permission bits (0o777) of the file or directory;
	// never setuid, setgid or sticky.
	Mode uint32 `json:"mode,omitempty"`
	// Files and Dirs count the regular files and the subdirectories of a
	// directory, so that the receiver can decide before it accepts.
	Files int64 `json:"files,omitempty"`
	Dirs  int64 `json:"dirs,omitempty"`
	// Stream says that the size is unknown: the data comes in chunks
	// until the sender's end of file (standard input).
	Stream bool `json:"stream,omitempty"`
}

// SendOptions tune a sending transfer. The zero value sends at full speed
// and reports nothing.
type SendOptions struct {
	// Progress, when set, is called from the sending goroutine with the
	// position reached: the bytes of file data up to there, the resumed
	// prefix included.
	Progress func(int64)
	// RateLimit, when positive, caps the data rate in bytes per second.
	RateLimit int64
}

// Result is what a completed transfer reports: plain data; SHA256 is the
// caller's.
type Result struct {
	// SHA256 is the hash both ends agree on: of the whole file, or of a
	// directory's entry stream.
	SHA256 []byte
	// Offset is where this session's data started: the length of the part
	// that the receiver already had, 0 unless the transfer resumed.
	Offset int64
	// Bytes counts the file data this session carried.
	Bytes int64
}

// Errors a caller branches on.
var (
	// ErrPeerClosed: the peer closed the connection normally (Close), so
	// no more offers come.
	ErrPeerClosed = errors.New("peer: the peer closed the connection")
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

// countWriter counts and reports what passes through it; base is added to
// what it reports.
type countWriter struct {
	w        io.Writer
	n        int64
	base     int64
	progress func(int64)
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	if c.progress != nil {
		c.progress(c.base + c.n)
	}
	return n, err
}

// offer opens a stream, sends the offer and returns the stream and the
// receiver's accepting answer, or an error wrapping ErrDeclined. The
// caller calls the returned stop and closes the stream.
func (c *Conn) offer(ctx context.Context, offer *Offer) (*quic.Stream, *answer, func() bool, error) {
	if err := offer.check(); err != nil {
		return nil, nil, nil, err
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("peer: opening a stream: %w", err)
	}
	stop := streamCtx(ctx, s)
	fail := func(err error) (*quic.Stream, *answer, func() bool, error) {
		stop()
		s.Close() // a declining receiver lingers until it sees our end
		return nil, nil, nil, err
	}
	if err := writeFrame(s, &message{Offer: offer}); err != nil {
		return fail(fmt.Errorf("peer: sending the offer: %w", err))
	}
	m, err := readFrame(s)
	switch {
	case err != nil:
		return fail(fmt.Errorf("peer: waiting for the answer: %w", err))
	case m.Answer == nil:
		return fail(errors.New("peer: the receiver answered something else than an answer"))
	case !m.Answer.Accept:
		return fail(fmt.Errorf("%w: %s", ErrDeclined, m.Answer.Reason))
	}
	return s, m.Answer, stop, nil
}

// dataWriter returns where the sender writes data: s, paced by opts.
func dataWriter(ctx context.Context, s io.Writer, opts SendOptions) io.Writer {
	if opts.RateLimit > 0 {
		return &pacedWriter{stop: ctx.Done(), w: s, rate: opts.RateLimit}
	}
	return s
}

// SendFile offers a file read from r on a new stream (offer.Kind is set to
// KindFile), waits for the answer and, when the receiver accepts, sends the
// data and waits for its verdict. With offer.Stream, r is read to its end
// and offer.Size is ignored; else r must hold offer.Size bytes. When r is
// an io.Seeker at offset 0 and the receiver has a partial copy, SendFile
// checks that r starts with the same bytes (their SHA-256) and sends only
// the rest. It returns the SHA-256 both ends agree on, or an error
// wrapping ErrDeclined or ErrHashMismatch.
func (c *Conn) SendFile(ctx context.Context, offer Offer, r io.Reader, opts SendOptions) (Result, error) {
	offer.Kind = KindFile
	if offer.Stream {
		offer.Size = 0
	}
	if err := ValidName(offer.Name); err != nil {
		return Result{}, err
	}
	s, a, stop, err := c.offer(ctx, &offer)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	defer s.Close()
	h := sha256.New()
	var res Result
	if a.Resume != nil {
		if res.Offset, err = resumeFrom(r, h, a.Resume, offer); err != nil {
			return res, err
		}
		if err := writeFrame(s, &message{Start: &start{Offset: res.Offset}}); err != nil {
			return res, fmt.Errorf("peer: sending: %w", err)
		}
	}
	out := dataWriter(ctx, s, opts)
	var chunks *chunkWriter
	if offer.Stream {
		chunks = &chunkWriter{w: out}
		out = chunks
	}
	cw := &countWriter{w: io.MultiWriter(out, h), base: res.Offset, progress: opts.Progress}
	if offer.Stream {
		_, err = io.Copy(cw, r)
		if err == nil {
			err = chunks.Close()
		}
	} else {
		var n int64
		n, err = io.Copy(cw, io.LimitReader(r, offer.Size-res.Offset))
		if err == nil && n != offer.Size-res.Offset {
			err = fmt.Errorf("the file shrank: %d of %d bytes", res.Offset+n, offer.Size)
		}
	}
	if err != nil {
		return res, fmt.Errorf("peer: sending: %w", err)
	}
	res.Bytes = cw.n
	res.SHA256, err = finishSend(s, h)
	return res, err
}

// resumeFrom answers a receiver's offer to resume: when r is seekable and
// its first a.Offset bytes hash to a.SHA256, it returns that offset with h
// holding the prefix; else it rewinds r and returns 0 with h reset.
func resumeFrom(r io.Reader, h hash.Hash, a *resume, offer Offer) (int64, error) {
	rs, ok := r.(io.Seeker)
	if !ok || offer.Stream || a.Offset > offer.Size {
		return 0, nil
	}
	n, err := io.CopyN(h, r, a.Offset)
	if err == nil && n == a.Offset && hex.EncodeToString(h.Sum(nil)) == a.SHA256 {
		return a.Offset, nil
	}
	h.Reset()
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("peer: rewinding after a resume check: %w", err)
	}
	return 0, nil
}

// finishSend sends the hash of the data and waits for the receiver's
// verdict.
func finishSend(s *quic.Stream, h hash.Hash) ([]byte, error) {
	sum := h.Sum(nil)
	if err := writeFrame(s, &message{Done: &done{SHA256: hex.EncodeToString(sum)}}); err != nil {
		return nil, fmt.Errorf("peer: sending: %w", err)
	}
	m, err := readFrame(s)
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
		if peerClosed(err) {
			return nil, ErrPeerClosed
		}
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
func (in *Incoming) Accept(ctx context.Context, w io.Writer, progress func(int64)) (Result, error) {
	return in.accept(ctx, w, nil, progress)
}

// AcceptFile accepts a file offer into f, a file open for reading and
// writing: when f already holds a part of the offered file (no more bytes
// than its size, from an earlier session), it offers to resume after
// that part; the sender decides (by the part's hash) whether f is kept
// and extended or truncated and written from the start.
func (in *Incoming) AcceptFile(ctx context.Context, f *os.File, progress func(int64)) (Result, error) {
	fi, err := f.Stat()
	if err != nil {
		_ = in.Decline("the receiver cannot read its partial file")
		return Result{}, err
	}
	have := fi.Size()
	if have == 0 || have > in.Offer.Size || in.Offer.Stream {
		if err := f.Truncate(0); err != nil {
			_ = in.Decline("the receiver cannot write the file")
			return Result{}, err
		}
		return in.accept(ctx, f, nil, progress)
	}
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err == nil {
		_, err = io.Copy(h, io.LimitReader(f, have))
	}
	if err != nil {
		_ = in.Decline("the receiver cannot read its partial file")
		return Result{}, fmt.Errorf("peer: hashing the partial file: %w", err)
	}
	return in.accept(ctx, f, &resumeState{f: f, h: h, have: have}, progress)
}

// resumeState is what AcceptFile offers to resume from.
type resumeState struct {
	f    *os.File
	h    hash.Hash
	have int64
}

func (in *Incoming) accept(ctx context.Context, w io.Writer, rs *resumeState, progress func(int64)) (Result, error) {
	s := in.s
	defer streamCtx(ctx, s)()
	defer s.Close()
	a := &answer{Accept: true}
	if rs != nil {
		a.Resume = &resume{Offset: rs.have, SHA256: hex.EncodeToString(rs.h.Sum(nil))}
	}
	if err := writeFrame(s, &message{Answer: a}); err != nil {
		return Result{}, fmt.Errorf("peer: accepting: %w", err)
	}
	h := sha256.New()
	var res Result
	if rs != nil {
		m, err := readFrame(s)
		switch {
		case err != nil:
			return res, fmt.Errorf("peer: waiting for the start: %w", err)
		case m.Start == nil || (m.Start.Offset != 0 && m.Start.Offset != rs.have):
			return res, errors.New("peer: the sender did not answer the resume offer with a start at 0 or at it")
		case m.Start.Offset == rs.have:
			h, res.Offset = rs.h, rs.have
			_, err = rs.f.Seek(rs.have, io.SeekStart)
		default:
			if err = rs.f.Truncate(0); err == nil {
				_, err = rs.f.Seek(0, io.SeekStart)
			}
		}
		if err != nil {
			return res, fmt.Errorf("peer: preparing the partial file: %w", err)
		}
	}
	cw := &countWriter{w: io.MultiWriter(w, h), base: res.Offset, progress: progress}
	var err error
	if in.Offer.Stream {
		_, err = io.Copy(cw, &chunkReader{r: s})
	} else {
		want := in.Offer.Size - res.Offset
		var n int64
		n, err = io.Copy(cw, io.LimitReader(s, want))
		if err == nil && n != want {
			err = fmt.Errorf("the sender stopped after %d of %d bytes", res.Offset+n, in.Offer.Size)
		}
	}
	res.Bytes = cw.n
	if err != nil {
		_ = writeFrame(s, &message{Ack: &ack{Error: err.Error()}})
		return res, fmt.Errorf("peer: receiving: %w", err)
	}
	res.SHA256, err = finishReceive(s, h)
	return res, err
}

// finishReceive reads the sender's hash, compares it with h's and sends
// the verdict.
func finishReceive(s *quic.Stream, h hash.Hash) ([]byte, error) {
	m, err := readFrame(s)
	if err != nil {
		return nil, fmt.Errorf("peer: waiting for the sender's hash: %w", err)
	}
	return checkDone(s, h, m, nil)
}

// checkDone compares the sender's hash in m with h's and sends the
// verdict. finish, when not nil, runs once the hashes match and before the
// verdict, which carries its error.
func checkDone(s *quic.Stream, h hash.Hash, m *message, finish func() error) ([]byte, error) {
	if m.Done == nil {
		return nil, errors.New("peer: the sender sent something else than its hash after the data")
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if m.Done.SHA256 != sum {
		_ = writeFrame(s, &message{Ack: &ack{Error: "SHA-256 mismatch: received " + sum}})
		return nil, fmt.Errorf("%w: received %s, the sender sent %s", ErrHashMismatch, sum, m.Done.SHA256)
	}
	if finish != nil {
		if err := finish(); err != nil {
			_ = writeFrame(s, &message{Ack: &ack{Error: err.Error()}})
			return nil, fmt.Errorf("peer: receiving: %w", err)
		}
	}
	if err := writeFrame(s, &message{Ack: &ack{OK: true, SHA256: sum}}); err != nil {
		return nil, fmt.Errorf("peer: confirming: %w", err)
	}
	s.Close()
	linger(s)
	return h.Sum(nil), nil
}

// peerClosed reports whether err is the peer's normal close: the
// application error code 0 that Close sends (RFC 9000, Section 10.2),
// received from the peer. It is known as soon as AcceptStream returns,
// which can be before Closed's channel is.
func peerClosed(err error) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && ae.Remote && ae.ErrorCode == 0
}
