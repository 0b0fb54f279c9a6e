package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

// Incoming is an offer received from a sender, to Accept or Decline once.
// It is not safe for concurrent use.
type Incoming struct {
	mb    Mailbox
	cfg   Config
	peer  *transit.Message
	offer Offer
	done  bool
}

// ReceiveOffer reads the sender's messages, first those in pending (already
// read from the wormhole by the caller), until its offer of a file or a
// directory, and returns it. A text offer is ErrText; a sender's error
// message is ErrDeclined; a malformed offer is ErrBadMessage (the sender
// is told, with an error message).
func ReceiveOffer(ctx context.Context, mb Mailbox, cfg Config, pending ...[]byte) (*Incoming, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	in := &Incoming{mb: mb, cfg: cfg}
	for {
		var b []byte
		if len(pending) > 0 {
			b, pending = pending[0], pending[1:]
		} else {
			var err error
			if b, err = mb.Receive(ctx); err != nil {
				return nil, err
			}
		}
		m, tm, err := parseMessage(b)
		if err != nil {
			return nil, fmt.Errorf("the sender's message: %w", err)
		}
		if tm != nil {
			in.peer = tm
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%w: the sender says %s", ErrDeclined, *m.Error)
		}
		if m.Offer == nil {
			continue
		}
		in.offer, err = ParseOffer(m.Offer)
		if errors.Is(err, ErrBadMessage) {
			_ = in.Decline(ctx, "unknown or malformed offer")
		}
		if err != nil {
			return nil, err
		}
		return in, nil
	}
}

// Offer returns what the sender offers.
func (in *Incoming) Offer() Offer { return in.offer }

// Decline tells the sender that the offer is refused, and why.
func (in *Incoming) Decline(ctx context.Context, reason string) error {
	if in.done {
		return errors.New("transfer: the offer was already answered")
	}
	in.done = true
	b, _ := json.Marshal(map[string]string{"error": reason})
	return in.mb.Send(ctx, b)
}

// Accept accepts the offer: it sends our transit message and file_ack,
// connects, and writes the offered bytes to w. Then it calls check, if not
// nil (to unpack a directory, say): only when check succeeds does it send
// the final ack with the SHA-256, so the sender's transfer fails when
// check does. More or fewer bytes than offered is an error.
func (in *Incoming) Accept(ctx context.Context, w io.Writer, check func() error) (Result, error) {
	if in.done {
		return Result{}, errors.New("transfer: the offer was already answered")
	}
	in.done = true
	key, err := in.mb.TransitKey(ctx)
	if err != nil {
		return Result{}, err
	}
	tr, err := in.cfg.newTransit(transit.Receiver, key)
	if err != nil {
		return Result{}, err
	}
	defer tr.Close()
	for _, m := range []map[string]any{{"transit": tr.Message()}, {"answer": map[string]string{"file_ack": "ok"}}} {
		b, _ := json.Marshal(m)
		if err := in.mb.Send(ctx, b); err != nil {
			return Result{}, err
		}
	}
	c, err := tr.Connect(ctx, in.cfg.filter(in.peer))
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	res := Result{Via: c.Describe()}
	if in.cfg.OnConnect != nil {
		in.cfg.OnConnect(res.Via)
	}
	cw := &receiving{w: w, progress: in.cfg.Progress}
	err = move(ctx, c, func() error {
		sum, err := transit.ReadData(c, cw, in.offer.Size)
		if err != nil {
			return err
		}
		res.SHA256 = sum
		if check != nil {
			if err := check(); err != nil {
				return err
			}
		}
		return transit.SendAck(c, sum)
	})
	if err != nil {
		return res, err
	}
	return res, nil
}
