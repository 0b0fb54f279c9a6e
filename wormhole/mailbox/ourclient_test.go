package mailbox

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// TestOurClient runs the whole exchange of two of our wormhole clients
// (allocate, join, key confirmation, ordered messages each way, verifiers,
// app versions, happy close) through our server.
func TestOurClient(t *testing.T) {
	s, url := startServer(t, Config{})
	refpeers.ClientPair(t, url)
	if st := s.Stats(); st.Mailboxes != 0 || st.Nameplates != 0 {
		t.Errorf("after both closed happily: %+v, want no mailbox and no nameplate", st)
	}
}

// TestOurClientAcrossRestart: the first client allocates and adds its PAKE
// message; the server restarts on the same database at the same address;
// the second client joins with the code, and the first one, reconnecting
// on its own, completes the rendezvous: the mailbox survived.
func TestOurClientAcrossRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "rendezvous.db")
	s1, addr, url, stop := startStoppable(t, Config{DBPath: db})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := wormhole.Config{URL: url, Reconnect: 20 * time.Second}
	a, err := wormhole.Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer a.Close(ctx)
	// a's PAKE message is in the mailbox; Send would wait for the peer's.
	waitFor(t, "a's pake stored", func() bool { return s1.Stats().Messages == 1 })

	stop()
	startServerAt(t, Config{DBPath: db}, addr)

	b, err := wormhole.Join(ctx, cfg, a.Code().String())
	if err != nil {
		t.Fatalf("Join after the restart: %v", err)
	}
	defer b.Close(ctx)
	if err := a.Send(ctx, []byte("from the first side")); err != nil {
		t.Fatalf("a.Send: %v", err)
	}
	if got, err := b.Receive(ctx); err != nil || string(got) != "from the first side" {
		t.Fatalf("b.Receive = %q, %v", got, err)
	}
	if err := b.Send(ctx, []byte("after the restart")); err != nil {
		t.Fatalf("b.Send: %v", err)
	}
	if got, err := a.Receive(ctx); err != nil || string(got) != "after the restart" {
		t.Fatalf("a.Receive = %q, %v", got, err)
	}
}

// TestOurClientLimit: messages over the server's size limit reach our
// client as the server's refusal: an error answer for one under the frame
// limit, a close (not a reconnect loop) for one past it; another pair
// carries on.
func TestOurClientLimit(t *testing.T) {
	_, url := startServer(t, Config{MaxMessageSize: 4096})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := wormhole.Config{URL: url}
	a, err := wormhole.Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer a.Close(ctx)
	b, err := wormhole.Join(ctx, cfg, a.Code().String())
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	defer b.Close(ctx)
	for _, size := range []int{3000, 20000} {
		w := a
		if size > 3000 {
			w = b
		}
		err := w.Send(ctx, make([]byte, size))
		if err == nil {
			// The refusal comes back asynchronously: the next wait sees it.
			_, err = w.Receive(ctx)
		}
		var se *wormhole.ServerError
		if !errors.As(err, &se) {
			t.Fatalf("%d-byte message: %v, want a *wormhole.ServerError", size, err)
		}
		t.Logf("%d-byte message refused: %v", size, err)
	}
	refpeers.ClientPair(t, url)
}
