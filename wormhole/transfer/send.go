package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"

	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

// Send offers offer.Size bytes of r to the peer (a file, or a directory
// zipped by WriteZip) and, once the peer accepts, sends them by transit and
// checks the receiver's SHA-256; r yielding fewer bytes is an error. It returns ErrDeclined when the peer declines. The
// wormhole must be open; Send neither closes it nor reads past the
// peer's answer.
//
// Send follows magic-wormhole's sender: transit message, then offer; the
// peer's transit message (hints), then its answer; transit connection;
// data; ack.
func Send(ctx context.Context, mb Mailbox, cfg Config, offer Offer, r io.Reader) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if err := offer.check(); err != nil {
		return Result{}, fmt.Errorf("transfer: cannot offer this: %w", err)
	}
	key, err := mb.TransitKey(ctx)
	if err != nil {
		return Result{}, err
	}
	tr, err := cfg.newTransit(transit.Sender, key)
	if err != nil {
		return Result{}, err
	}
	defer tr.Close()
	for _, m := range []map[string]any{{"transit": tr.Message()}, {"offer": offer}} {
		b, err := json.Marshal(m)
		if err != nil {
			return Result{}, err
		}
		if err := mb.Send(ctx, b); err != nil {
			return Result{}, err
		}
	}
	peer, err := awaitAnswer(ctx, mb)
	if err != nil {
		return Result{}, err
	}
	c, err := tr.Connect(ctx, cfg.filter(peer))
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	res := Result{Via: c.Describe()}
	if cfg.OnConnect != nil {
		cfg.OnConnect(res.Via)
	}
	data := &sending{r: r, h: sha256.New(), progress: cfg.Progress}
	err = move(ctx, c, func() error { return transit.SendData(c, data, offer.Size) })
	if err != nil {
		return res, err
	}
	res.SHA256 = data.h.Sum(nil)
	return res, nil
}

// awaitAnswer reads the receiver's messages until its answer, and returns
// its transit message (an empty one if it sent none).
func awaitAnswer(ctx context.Context, mb Mailbox) (*transit.Message, error) {
	var peer *transit.Message
	for {
		b, err := mb.Receive(ctx)
		if err != nil {
			return nil, err
		}
		m, tm, err := parseMessage(b)
		if err != nil {
			return nil, fmt.Errorf("the receiver's message: %w", err)
		}
		if tm != nil {
			peer = tm
		}
		switch {
		case m.Error != nil:
			return nil, fmt.Errorf("%w: %s", ErrDeclined, *m.Error)
		case m.Answer != nil && m.Answer.FileAck != nil && *m.Answer.FileAck == "ok":
			return peer, nil
		case m.Answer != nil:
			return nil, fmt.Errorf("%w: it answered %.200s", ErrDeclined, b)
		}
		// Anything else (a transit message alone, unknown keys) waits
		// for the answer, as magic-wormhole does.
	}
}
