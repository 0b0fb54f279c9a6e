package mailbox

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// The real clients (Debian's magic-wormhole 0.12 and wormhole-william)
// against this server, on loopback.

type result struct {
	out string
	err error
}

// runBoth runs the sender and the receiver at once and returns their
// combined output and errors.
func runBoth(t *testing.T, send, recv func(context.Context) ([]byte, error)) (s, r result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { b, err := send(ctx); s = result{string(b), err} })
	time.Sleep(200 * time.Millisecond) // let the sender claim first, as people do
	wg.Go(func() { b, err := recv(ctx); r = result{string(b), err} })
	wg.Wait()
	return s, r
}

func TestWormholeText(t *testing.T) {
	bin := testutil.RequireBinary(t, "wormhole")
	s, url := startServer(t, Config{MOTD: "icebreaker test server"})
	const code, text = "7-guitarist-revenge", "hello through icebreaker's mailbox"
	snd, rcv := runBoth(t,
		func(ctx context.Context) ([]byte, error) {
			return wormholeCmd(ctx, t, bin, url, "send", "--code", code, "--text", text).CombinedOutput()
		},
		func(ctx context.Context) ([]byte, error) {
			return wormholeCmd(ctx, t, bin, url, "receive", code).CombinedOutput()
		})
	if snd.err != nil || rcv.err != nil {
		t.Fatalf("send: %v\n%s\nreceive: %v\n%s", snd.err, snd.out, rcv.err, rcv.out)
	}
	if !strings.Contains(rcv.out, text) {
		t.Errorf("receiver printed %q, want the text %q", rcv.out, text)
	}
	if !strings.Contains(snd.out+rcv.out, "icebreaker test server") {
		t.Errorf("no client showed the message of the day:\n%s\n%s", snd.out, rcv.out)
	}
	waitFor(t, "both sides to close", func() bool { st := s.Stats(); return st.Rendezvous == 1 && st.Mailboxes == 0 })
	if st := s.Stats(); st.Happy != 2 || st.Nameplates != 0 {
		t.Errorf("stats %+v, want 2 happy closes and no nameplate left", st)
	}
}

func TestWormholeWilliamToWormhole(t *testing.T) {
	william := testutil.RequireBinary(t, "wormhole-william")
	bin := testutil.RequireBinary(t, "wormhole")
	s, url := startServer(t, Config{})
	const code, text = "12-aardvark-adroitness", "from the Go client to the Python one"
	snd, rcv := runBoth(t,
		func(ctx context.Context) ([]byte, error) {
			cmd := testutil.Command(ctx, william, "send", "--relay-url", url, "--code", code, "--text", text)
			cmd.Env = append(cmd.Environ(), "HOME="+t.TempDir())
			return cmd.CombinedOutput()
		},
		func(ctx context.Context) ([]byte, error) {
			return wormholeCmd(ctx, t, bin, url, "receive", code).CombinedOutput()
		})
	if snd.err != nil || rcv.err != nil {
		t.Fatalf("wormhole-william send: %v\n%s\nwormhole receive: %v\n%s", snd.err, snd.out, rcv.err, rcv.out)
	}
	if !strings.Contains(rcv.out, text) {
		t.Errorf("receiver printed %q, want %q", rcv.out, text)
	}
	// wormhole-william may exit before its close reaches the server; the
	// Python receiver waits for "closed".
	waitFor(t, "the receiver's happy close", func() bool { return s.Stats().Happy >= 1 })
}

func TestWormholeWrongCode(t *testing.T) {
	bin := testutil.RequireBinary(t, "wormhole")
	s, url := startServer(t, Config{})
	snd, rcv := runBoth(t,
		func(ctx context.Context) ([]byte, error) {
			return wormholeCmd(ctx, t, bin, url, "send", "--code", "5-right-words", "--text", "secret").CombinedOutput()
		},
		func(ctx context.Context) ([]byte, error) {
			return wormholeCmd(ctx, t, bin, url, "receive", "5-wrong-words").CombinedOutput()
		})
	if snd.err == nil || rcv.err == nil {
		t.Fatalf("a wrong code succeeded:\nsend: %v\n%s\nreceive: %v\n%s", snd.err, snd.out, rcv.err, rcv.out)
	}
	for _, r := range []result{snd, rcv} {
		if !strings.Contains(r.out, "Key confirmation failed") {
			t.Errorf("want a key-confirmation failure, got:\n%s", r.out)
		}
	}
	if strings.Contains(rcv.out, "secret") {
		t.Errorf("the text reached the wrong code: %s", rcv.out)
	}
	waitFor(t, "the scary closes", func() bool { return s.Stats().Scary == 2 })
}

// TestWormholeCrowded: a third side claiming the nameplate of a pending
// transfer gets "crowded", and the real client says so.
func TestWormholeCrowded(t *testing.T) {
	bin := testutil.RequireBinary(t, "wormhole")
	s, url := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender := testutil.Start(t, wormholeCmd(ctx, t, bin, url, "send", "--code", "3-crowded-room", "--text", "x"))
	waitFor(t, "the sender to claim", func() bool { return s.Stats().Nameplates == 1 })
	second := bound(t, url, "5ec0ad")
	second.send(map[string]any{"type": "claim", "nameplate": "3"})
	second.next("claimed")
	out, err := wormholeCmd(ctx, t, bin, url, "receive", "3-crowded-room").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "crowded") {
		t.Fatalf("third side: %v\n%s", err, out)
	}
	if s.Stats().Crowded == 0 {
		t.Error("no crowded counted")
	}
	sender.Kill()
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
