package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/wormhole/transfer"
)

// The interop with the real `wormhole` clients is tested end to end in
// cmd/icebreaker (wormholefile_test.go); these tests check this package's
// sequencing between its own two sides, through our transit relay.

// chanMailbox is one side of an in-memory wormhole.
type chanMailbox struct {
	in, out chan []byte
	key     []byte
}

func mailboxPair(t testing.TB) (*chanMailbox, *chanMailbox) {
	key := make([]byte, 32)
	rand.Read(key)
	a, b := make(chan []byte, 16), make(chan []byte, 16)
	return &chanMailbox{in: a, out: b, key: key}, &chanMailbox{in: b, out: a, key: key}
}

func (m *chanMailbox) Send(ctx context.Context, b []byte) error {
	select {
	case m.out <- bytes.Clone(b):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *chanMailbox) Receive(ctx context.Context) ([]byte, error) {
	select {
	case b := <-m.in:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *chanMailbox) TransitKey(context.Context) ([]byte, error) { return m.key, nil }

// run runs the sender and the receiver's handling of the offer at once.
func run(t *testing.T, send func(context.Context, transfer.Mailbox) error, recv func(context.Context, transfer.Mailbox) error) (serr, rerr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	a, b := mailboxPair(t)
	var wg sync.WaitGroup
	wg.Go(func() { serr = send(ctx, a) })
	rerr = recv(ctx, b)
	wg.Wait()
	return serr, rerr
}

// TestSendAcceptRelayed: a file goes through the relay when neither side
// listens; both sides agree on the SHA-256 and see the relay; progress
// reaches the size; no goroutine is left.
func TestSendAcceptRelayed(t *testing.T) {
	before := runtime.NumGoroutine()
	_, relay := refpeers.StartOurTransitRelay(t)
	data := make([]byte, 700<<10)
	rand.Read(data)
	var sres, rres transfer.Result
	var got bytes.Buffer
	var last int64
	serr, rerr := run(t, func(ctx context.Context, mb transfer.Mailbox) (err error) {
		sres, err = transfer.Send(ctx, mb, transfer.Config{Relays: []string{relay}},
			transfer.Offer{Kind: transfer.File, Name: "x.bin", Size: int64(len(data))}, bytes.NewReader(data))
		return err
	}, func(ctx context.Context, mb transfer.Mailbox) error {
		in, err := transfer.ReceiveOffer(ctx, mb, transfer.Config{NoDirect: true, Progress: func(n int64) { last = n }})
		if err != nil {
			return err
		}
		if o := in.Offer(); o.Name != "x.bin" || o.Size != int64(len(data)) {
			t.Errorf("offer %+v", o)
		}
		rres, err = in.Accept(ctx, &got, nil)
		return err
	})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(got.Bytes(), data) || !bytes.Equal(sres.SHA256, sum[:]) || !bytes.Equal(rres.SHA256, sum[:]) {
		t.Fatalf("data or hashes differ: got %d bytes, sender %x, receiver %x", got.Len(), sres.SHA256, rres.SHA256)
	}
	if !sres.Relayed() || !rres.Relayed() || last != int64(len(data)) {
		t.Errorf("via %q / %q, progress %d", sres.Via, rres.Via, last)
	}
	testutil.CheckGoroutines(t, before+2) // the relay's, stopped at cleanup
}

// TestDeclineAndFailedCheck: a declined offer fails the sender with
// ErrDeclined; a receiver whose check fails sends no ack, which fails the
// sender too.
func TestDeclineAndFailedCheck(t *testing.T) {
	_, relay := refpeers.StartOurTransitRelay(t)
	offer := transfer.Offer{Kind: transfer.File, Name: "f", Size: 3}
	send := func(ctx context.Context, mb transfer.Mailbox) error {
		_, err := transfer.Send(ctx, mb, transfer.Config{Relays: []string{relay}}, offer, bytes.NewReader([]byte("abc")))
		return err
	}
	serr, rerr := run(t, send, func(ctx context.Context, mb transfer.Mailbox) error {
		in, err := transfer.ReceiveOffer(ctx, mb, transfer.Config{})
		if err != nil {
			return err
		}
		return in.Decline(ctx, "no thanks")
	})
	if rerr != nil || !errors.Is(serr, transfer.ErrDeclined) {
		t.Errorf("decline: send %v, receive %v", serr, rerr)
	}
	bad := errors.New("cannot unpack")
	serr, rerr = run(t, send, func(ctx context.Context, mb transfer.Mailbox) error {
		in, err := transfer.ReceiveOffer(ctx, mb, transfer.Config{})
		if err != nil {
			return err
		}
		_, err = in.Accept(ctx, new(bytes.Buffer), func() error { return bad })
		return err
	})
	if !errors.Is(rerr, bad) || serr == nil {
		t.Errorf("failed check: send %v, receive %v", serr, rerr)
	}
}
