package wormhole_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// pair allocates on url and joins with the code; both are closed when the
// test ends.
func pair(t *testing.T, cfg wormhole.Config) (a, b *wormhole.Wormhole) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	a = allocate(t, ctx, cfg)
	return a, join(t, ctx, cfg, a.Code().String())
}

// allocate is wormhole.Allocate for a test: it fails the test on an error,
// and the test's cleanup closes the Wormhole.
func allocate(t *testing.T, ctx context.Context, cfg wormhole.Config) *wormhole.Wormhole {
	t.Helper()
	w, err := wormhole.Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	t.Cleanup(func() { closeSoon(w) })
	return w
}

// join is wormhole.Join for a test, like allocate.
func join(t *testing.T, ctx context.Context, cfg wormhole.Config, code string) *wormhole.Wormhole {
	t.Helper()
	w, err := wormhole.Join(ctx, cfg, code)
	if err != nil {
		t.Fatalf("Join %s: %v", code, err)
	}
	t.Cleanup(func() { closeSoon(w) })
	return w
}

// shared is the reference mailbox server that TestMain starts for the
// tests that neither restart nor kill theirs; sharedErr says why there is
// none.
var (
	shared    *refpeers.Mailbox
	sharedErr error
)

func TestMain(m *testing.M) {
	var stop func()
	shared, stop, sharedErr = refpeers.StartSharedMailbox()
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// setup returns the shared mailbox server and a context that bounds the
// test.
func setup(t *testing.T) (context.Context, *refpeers.Mailbox) {
	t.Helper()
	if sharedErr != nil {
		testutil.Unavailable(t, "%v", sharedErr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, shared
}

// setupOwn starts a reference mailbox server for the test alone (which may
// restart or kill it) and returns it with a context that bounds the test.
func setupOwn(t *testing.T) (context.Context, *refpeers.Mailbox) {
	t.Helper()
	mb := refpeers.StartMailbox(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, mb
}

// closeAll closes the wormholes and fails the test on an error.
func closeAll(t *testing.T, ctx context.Context, ws ...*wormhole.Wormhole) {
	t.Helper()
	for _, w := range ws {
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// closeSoon closes w (again) with a short bound, for cleanups that may run
// after the server is gone.
func closeSoon(w *wormhole.Wormhole) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w.Close(ctx)
}

// TestGoToGo: two of our clients through the reference mailbox server
// agree on a key, exchange messages in order in both directions and close
// happily.
func TestGoToGo(t *testing.T) {
	t.Parallel()
	_, mb := setup(t)
	refpeers.ClientPair(t, mb.URL)
}

// TestWrongCode: a peer with another code makes both sides fail key
// confirmation with ErrWrongCode.
func TestWrongCode(t *testing.T) {
	t.Parallel()
	ctx, mb := setup(t)
	cfg := wormhole.Config{URL: mb.URL}
	a := allocate(t, ctx, cfg)
	b := join(t, ctx, cfg, a.Code().Nameplate+"-wrong-words")
	for name, w := range map[string]*wormhole.Wormhole{"allocator": a, "joiner": b} {
		if _, err := w.Verifier(ctx); !errors.Is(err, wormhole.ErrWrongCode) {
			t.Errorf("%s: Verifier = %v, want ErrWrongCode", name, err)
		}
		if _, err := w.Receive(ctx); !errors.Is(err, wormhole.ErrWrongCode) {
			t.Errorf("%s: Receive = %v, want ErrWrongCode", name, err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Errorf("Close after a wrong code (mood scary): %v", err)
	}
}

// TestCrowded: a third side on a nameplate that two sides hold gets
// ErrCrowded. The two holders are raw WebSocket clients that claim and never
// release, so the nameplate stays full.
func TestCrowded(t *testing.T) {
	t.Parallel()
	ctx, mb := setup(t)
	for _, side := range []string{"aaaa", "bbbb"} {
		c, _, err := websocket.Dial(ctx, mb.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		for _, cmd := range []string{
			`{"type":"bind","appid":"` + wormhole.AppID + `","side":"` + side + `","id":"1"}`,
			`{"type":"claim","nameplate":"9999","id":"2"}`,
		} {
			if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
				t.Fatal(err)
			}
		}
		for { // until the claim is answered
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(`"claimed"`)) {
				break
			}
		}
	}
	w, err := wormhole.Join(ctx, wormhole.Config{URL: mb.URL}, "9999-third-side")
	if err == nil {
		w.Close(ctx)
	}
	if !errors.Is(err, wormhole.ErrCrowded) {
		t.Fatalf("third side: %v, want ErrCrowded", err)
	}
}

// TestReconnectDropped: the connection of each side is dropped in the
// middle of the rendezvous; the sides reconnect, re-bind, re-claim and
// re-open, the server replays the mailbox, and the exchange completes with
// every message delivered once and in order.
func TestReconnectDropped(t *testing.T) {
	t.Parallel()
	ctx, mb := setup(t)
	cfg := wormhole.Config{URL: mb.URL}
	a := allocate(t, ctx, cfg)
	a.DropConnection() // before the peer came: the claim must survive
	b := join(t, ctx, cfg, a.Code().String())
	if err := a.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	b.DropConnection()
	a.DropConnection()
	if err := a.Send(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		got, err := b.Receive(ctx)
		if err != nil || string(got) != want {
			t.Fatalf("Receive = %q, %v; want %q", got, err, want)
		}
	}
	b.DropConnection()
	if err := b.Send(ctx, []byte("back")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Receive(ctx); err != nil || string(got) != "back" {
		t.Fatalf("Receive = %q, %v; want back", got, err)
	}
	va, err := a.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.Verifier(ctx)
	if err != nil || !bytes.Equal(va, vb) {
		t.Fatalf("verifiers %x and %x (%v)", va, vb, err)
	}
	closeAll(t, ctx, a, b)
}

// TestReconnectServerRestart: the reference server is restarted with the
// same database twice: after the code was allocated and before the peer
// joined (the nameplate and the PAKE message survive), and between the key
// confirmation and the messages. Both sides resume.
func TestReconnectServerRestart(t *testing.T) {
	t.Parallel()
	ctx, mb := setupOwn(t)
	cfg := wormhole.Config{URL: mb.URL}
	a := allocate(t, ctx, cfg)
	mb.Restart(t)
	b := join(t, ctx, cfg, a.Code().String())
	if _, err := a.Verifier(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Restart(t)
	if err := a.Send(ctx, []byte("after restart")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Receive(ctx); err != nil || string(got) != "after restart" {
		t.Fatalf("Receive = %q, %v", got, err)
	}
	closeAll(t, ctx, a, b)
}

// TestServerGone: when the server stays away past Config.Reconnect, waits
// return ErrServerGone.
func TestServerGone(t *testing.T) {
	t.Parallel()
	ctx, mb := setupOwn(t)
	a := allocate(t, ctx, wormhole.Config{URL: mb.URL, Reconnect: 300 * time.Millisecond})
	mb.Proc.Kill()
	if _, err := a.Verifier(ctx); !errors.Is(err, wormhole.ErrServerGone) {
		t.Fatalf("Verifier = %v, want ErrServerGone", err)
	}
	// Nothing listens any more: connecting fails the same way.
	if _, err := wormhole.Allocate(ctx, wormhole.Config{URL: mb.URL}); !errors.Is(err, wormhole.ErrServerGone) {
		t.Fatalf("Allocate = %v, want ErrServerGone", err)
	}
}

// TestTimeout: a peer that never comes ends a wait with ErrTimeout, and the
// mood is lonely.
func TestTimeout(t *testing.T) {
	t.Parallel()
	ctx, mb := setup(t)
	// 1 s, not less: Close waits for the (Python) server within the same
	// timeout, which a loaded machine made miss 300 ms.
	a := allocate(t, ctx, wormhole.Config{URL: mb.URL, Timeout: time.Second})
	if _, err := a.Receive(ctx); !errors.Is(err, wormhole.ErrTimeout) {
		t.Fatalf("Receive = %v, want ErrTimeout", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if _, err := a.Verifier(short); !errors.Is(err, wormhole.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verifier with a short deadline = %v, want ErrTimeout and DeadlineExceeded", err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close (lonely): %v", err)
	}
}

// TestICEServersPlainServer: the reference server does not know
// icebreaker's command; ICEServers says the server does not offer it, and
// the session goes on.
func TestICEServersPlainServer(t *testing.T) {
	t.Parallel()
	ctx, mb := setup(t)
	a, b := pair(t, wormhole.Config{URL: mb.URL})
	_, _, err := a.ICEServers(ctx, "secret")
	if !errors.Is(err, wormhole.ErrICENotOffered) {
		t.Fatalf("ICEServers = %v, want ErrICENotOffered", err)
	}
	if want := "unknown type"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not carry the server's %q", err, want)
	}
	if _, _, err := refpeers.ICEServers(t, mb.URL, ""); !errors.Is(err, wormhole.ErrICENotOffered) {
		t.Fatalf("refpeers.ICEServers = %v, want ErrICENotOffered", err)
	}
	if err := b.Send(ctx, []byte("still fine")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Receive(ctx); err != nil || string(got) != "still fine" {
		t.Fatalf("after ICEServers: Receive = %q, %v", got, err)
	}
}

// TestWelcomeError: a server whose welcome carries an error refuses the
// client, which says why.
func TestWelcomeError(t *testing.T) {
	t.Parallel()
	mb := refpeers.StartMailbox(t, "--signal-error=closed for maintenance")
	_, err := wormhole.Allocate(t.Context(), wormhole.Config{URL: mb.URL})
	var se *wormhole.ServerError
	if !errors.As(err, &se) || se.Text != "closed for maintenance" {
		t.Fatalf("Allocate = %v, want the server's welcome error", err)
	}
}

// TestNoGoroutineLeft: a whole exchange leaves no goroutine behind.
func TestNoGoroutineLeft(t *testing.T) {
	_, mb := setup(t)
	before := runtime.NumGoroutine()
	refpeers.ClientPair(t, mb.URL)
	testutil.CheckGoroutines(t, before)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg wormhole.Config
		ok  bool
	}{
		{wormhole.Config{}, true},
		{wormhole.Config{URL: "ws://127.0.0.1:1/v1"}, true},
		{wormhole.Config{URL: "http://127.0.0.1:1/v1"}, false},
		{wormhole.Config{Words: -1}, false},
		{wormhole.Config{Timeout: -time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v", tc.cfg, err)
		}
	}
}
