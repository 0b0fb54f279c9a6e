package peer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/quic-go/quic-go"
)

// A pipe is a transfer stream (transfer.go) whose offer is
// {"kind":"pipe"} (standard input and output) or {"kind":"forward"} (one
// forwarded TCP connection); once accepted, it carries raw bytes both
// ways, each direction ending with the stream's FIN.

// OpenPipe offers a pipe of the kind (KindPipe or KindForward) on a new
// stream and returns the stream once the peer accepts it.
func (c *Conn) OpenPipe(ctx context.Context, kind string) (*quic.Stream, error) {
	if kind != KindPipe && kind != KindForward {
		return nil, fmt.Errorf("peer: %q is not a pipe kind", kind)
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer: opening a stream: %w", err)
	}
	stop := streamCtx(ctx, s)
	defer stop()
	if err := writeFrame(s, &message{Offer: &Offer{Kind: kind}}); err != nil {
		return nil, fmt.Errorf("peer: offering a pipe: %w", err)
	}
	m, err := readFrame(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("peer: waiting for the answer: %w", err)
	case m.Answer == nil:
		return nil, errors.New("peer: the peer answered something else than an answer")
	case !m.Answer.Accept:
		return nil, fmt.Errorf("%w: %s", ErrDeclined, m.Answer.Reason)
	}
	return s, nil
}

// AcceptPipe accepts a pipe offer of the kind and returns its stream.
func (in *Incoming) AcceptPipe(kind string) (*quic.Stream, error) {
	if in.Offer.Kind != kind {
		return nil, fmt.Errorf("peer: the offer is a %q, not a %q", in.Offer.Kind, kind)
	}
	if err := writeFrame(in.s, &message{Answer: &answer{Accept: true}}); err != nil {
		return nil, fmt.Errorf("peer: accepting: %w", err)
	}
	return in.s, nil
}

// Pipe copies r to s, then closes s's sending side, and copies s to w,
// then closes w's sending side if it has one (CloseWrite, as a TCP
// connection), until both directions have ended (EOF on r and the peer's
// FIN) or one fails; ctx's end cancels the stream. It returns the bytes sent and
// received. A read of r that blocks is not interrupted: Pipe then returns
// with the error, and the goroutine reading r ends with that read.
func Pipe(ctx context.Context, s *quic.Stream, r io.Reader, w io.Writer) (sent, received int64, err error) {
	stop := streamCtx(ctx, s)
	defer stop()
	type result struct {
		n   int64
		err error
	}
	out := make(chan result, 1)
	go func() {
		n, err := io.Copy(s, r)
		if err == nil {
			err = s.Close()
		} else {
			s.CancelWrite(3)
		}
		out <- result{n, err}
	}()
	received, errIn := io.Copy(w, s)
	if errIn != nil {
		s.CancelWrite(3) // unblock the sender if it is stuck on the stream
		select {
		case res := <-out:
			sent = res.n
		default: // blocked reading r
		}
		return sent, received, fmt.Errorf("peer: pipe: receiving: %w", errIn)
	}
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	var res result
	select {
	case res = <-out:
	case <-ctx.Done():
		return 0, received, fmt.Errorf("peer: pipe: %w", ctx.Err())
	}
	if res.err != nil {
		return res.n, received, fmt.Errorf("peer: pipe: sending: %w", res.err)
	}
	return res.n, received, nil
}

// Closed returns a channel closed when the QUIC connection has ended (the
// peer closed it, or it failed or timed out).
func (c *Conn) Closed() <-chan struct{} { return c.qc.Context().Done() }
