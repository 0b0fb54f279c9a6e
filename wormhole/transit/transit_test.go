package transit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/wormhole"
	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// The reference mailbox server and transit relay that TestMain starts for
// all tests, and why they are missing if they are.
var (
	mailbox    *refpeers.Mailbox
	relay      *refpeers.TransitRelay
	mailboxErr error
	relayErr   error
)

func TestMain(m *testing.M) {
	var stopMailbox, stopRelay func()
	mailbox, stopMailbox, mailboxErr = refpeers.StartSharedMailbox()
	relay, stopRelay, relayErr = refpeers.StartSharedTransitRelay()
	code := m.Run()
	for _, stop := range []func(){stopMailbox, stopRelay} {
		if stop != nil {
			stop()
		}
	}
	os.Exit(code)
}

// needRelay returns the shared transit relay (and mailbox server, if
// withMailbox), or makes the test unavailable.
func needRelay(t *testing.T, withMailbox bool) (*refpeers.TransitRelay, *refpeers.Mailbox) {
	t.Helper()
	if relayErr != nil {
		testutil.Unavailable(t, "%v", relayErr)
	}
	if withMailbox && mailboxErr != nil {
		testutil.Unavailable(t, "%v", mailboxErr)
	}
	return relay, mailbox
}

// connectPair runs Connect on both sides with each other's Message.
func connectPair(t *testing.T, ctx context.Context, s, r *transit.Transit) (sc, rc *transit.Conn, serr, rerr error) {
	t.Helper()
	sm, rm := s.Message(), r.Message()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rc, rerr = r.Connect(ctx, &sm)
	}()
	sc, serr = s.Connect(ctx, &rm)
	<-done
	return sc, rc, serr, rerr
}

// newTransit makes a Transit that the test's cleanup closes.
func newTransit(t *testing.T, cfg transit.Config) *transit.Transit {
	t.Helper()
	tr, err := transit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// mustConnect is connectPair for tests that expect success; the cleanup
// closes the connections.
func mustConnect(t *testing.T, ctx context.Context, s, r *transit.Transit) (sc, rc *transit.Conn) {
	t.Helper()
	sc, rc, serr, rerr := connectPair(t, ctx, s, r)
	if serr != nil || rerr != nil {
		t.Fatalf("Connect: sender %v, receiver %v", serr, rerr)
	}
	t.Cleanup(func() { sc.Close(); rc.Close() })
	return sc, rc
}

// move sends data from sc to rc and checks what arrived and the ack.
func move(t *testing.T, sc, rc *transit.Conn, data []byte) {
	t.Helper()
	var got bytes.Buffer
	var sum []byte
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sum, rerr = transit.ReceiveData(rc, &got, int64(len(data)))
	}()
	if err := transit.SendData(sc, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("SendData: %v", err)
	}
	<-done
	if rerr != nil {
		t.Fatalf("ReceiveData: %v", rerr)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got.Bytes(), data) || !bytes.Equal(sum, want[:]) {
		t.Fatalf("received %d bytes (sha256 %x), sent %d (%x)", got.Len(), sum, len(data), want)
	}
}

// TestThroughReferenceRelay: our sender and our receiver, neither
// listening, move 4 MB through the reference transit relay.
func TestThroughReferenceRelay(t *testing.T) {
	t.Parallel()
	relay, _ := needRelay(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key := randomBytes(t, 32)
	s := newTransit(t, transit.Config{Role: transit.Sender, Key: key, Relays: []string{relay.Addr}})
	// The receiver learns the relay only from the sender's hints.
	r := newTransit(t, transit.Config{Role: transit.Receiver, Key: key})
	sc, rc := mustConnect(t, ctx, s, r)
	if sc.Describe() != "relay "+relay.Addr {
		t.Errorf("sender connected via %q", sc.Describe())
	}
	move(t, sc, rc, randomBytes(t, 4<<20))
}

// TestDirectWins: with a listener on each side and no relay, a direct
// connection wins, and only one.
func TestDirectWins(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key := randomBytes(t, 32)
	s := newTransit(t, transit.Config{Role: transit.Sender, Key: key, ListenAddr: "127.0.0.1:0"})
	r := newTransit(t, transit.Config{Role: transit.Receiver, Key: key, ListenAddr: "127.0.0.1:0"})
	sc, rc := mustConnect(t, ctx, s, r)
	move(t, sc, rc, randomBytes(t, 100<<10))
}

// TestNoGoroutineLeft: Connect stops every attempt (and the accept loop)
// before it returns.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key := randomBytes(t, 32)
	s, _ := transit.New(transit.Config{Role: transit.Sender, Key: key, ListenAddr: "127.0.0.1:0"})
	r, _ := transit.New(transit.Config{Role: transit.Receiver, Key: key, ListenAddr: "127.0.0.1:0"})
	sc, rc, serr, rerr := connectPair(t, ctx, s, r)
	if serr != nil || rerr != nil {
		t.Fatalf("Connect: sender %v, receiver %v", serr, rerr)
	}
	sc.Close()
	rc.Close()
	s.Close()
	r.Close()
	testutil.CheckGoroutines(t, before)
}

// TestWrongKey: sides with different keys never complete a handshake.
func TestWrongKey(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := newTransit(t, transit.Config{Role: transit.Sender, Key: randomBytes(t, 32), ListenAddr: "127.0.0.1:0", Timeout: 2 * time.Second})
	r := newTransit(t, transit.Config{Role: transit.Receiver, Key: randomBytes(t, 32), Timeout: 2 * time.Second})
	_, _, serr, rerr := connectPair(t, ctx, s, r)
	if !errors.Is(serr, transit.ErrNoConnection) || !errors.Is(rerr, transit.ErrNoConnection) {
		t.Fatalf("Connect with different keys: sender %v, receiver %v", serr, rerr)
	}
	if !errors.Is(rerr, transit.ErrBadHandshake) {
		t.Errorf("receiver's error does not say the handshake was wrong: %v", rerr)
	}
}

// TestReceiveFromPythonSend: a real `wormhole send FILE --no-listen`, with
// the reference transit relay as its helper, sends a file to our receiver
// (the wormhole and transit APIs); the bytes and the SHA-256 match. Once
// our receiver offers only the relay, once only a direct listener (which
// the Python sender dials).
func TestReceiveFromPythonSend(t *testing.T) {
	t.Parallel()
	py := testutil.RequireBinary(t, "wormhole")
	relay, mb := needRelay(t, true)
	for i, listen := range []string{"", "127.0.0.1:0"} {
		t.Run(fmt.Sprintf("listen=%q", listen), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
			defer cancel()
			data := randomBytes(t, 1<<20+12345)
			file := filepath.Join(t.TempDir(), "payload.bin")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			code := fmt.Sprintf("%d-payload-transfer", 50+i)
			send := testutil.Start(t, testutil.Command(ctx, py, "--relay-url", mb.URL, "--transit-helper", "tcp:"+relay.Addr,
				"send", "--no-listen", "--code", code, file))
			got, sum := receiveFile(t, ctx, mb.URL, code, listen)
			want := sha256.Sum256(data)
			if !bytes.Equal(got, data) || !bytes.Equal(sum, want[:]) {
				t.Fatalf("received %d bytes (sha256 %x), sent %d (%x)", len(got), sum, len(data), want)
			}
			if err := send.Wait(); err != nil {
				t.Fatalf("wormhole send: %v\n%s", err, send.Output())
			}
		})
	}
}

// receiveFile is the receiving half of magic-wormhole's file transfer
// (file-transfer-protocol.md), written out here until the file commands
// exist: read the sender's transit hints and offer, answer with ours and
// file_ack, connect, receive, ack.
func receiveFile(t *testing.T, ctx context.Context, url, code, listen string) ([]byte, []byte) {
	t.Helper()
	w, err := wormhole.Join(ctx, wormhole.Config{URL: url}, code)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	var peer *transit.Message
	var size int64
	for peer == nil || size == 0 {
		b, err := w.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Transit json.RawMessage `json:"transit"`
			Offer   struct {
				File struct {
					Filename string `json:"filename"`
					Filesize int64  `json:"filesize"`
				} `json:"file"`
			} `json:"offer"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("sender's message %s: %v", b, err)
		}
		if m.Transit != nil {
			if peer, err = transit.ParseMessage(m.Transit); err != nil {
				t.Fatal(err)
			}
		}
		if m.Offer.File.Filesize > 0 {
			size = m.Offer.File.Filesize
		}
	}
	key, err := w.TransitKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transit.New(transit.Config{Role: transit.Receiver, Key: key, ListenAddr: listen})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if listen != "" {
		// Offer only the direct path: drop the sender's relay hints.
		var direct []transit.Hint
		for _, h := range peer.Hints {
			if h.Type == transit.TypeDirectTCP {
				direct = append(direct, h)
			}
		}
		peer.Hints = direct
	}
	ours, _ := json.Marshal(map[string]any{"transit": tr.Message()})
	ack, _ := json.Marshal(map[string]any{"answer": map[string]string{"file_ack": "ok"}})
	if err := w.Send(ctx, ours); err != nil {
		t.Fatal(err)
	}
	if err := w.Send(ctx, ack); err != nil {
		t.Fatal(err)
	}
	c, err := tr.Connect(ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if listen != "" && c.Describe()[:6] != "direct" || listen == "" && c.Describe()[:5] != "relay" {
		t.Errorf("connected via %q", c.Describe())
	}
	var got bytes.Buffer
	c.NetConn().SetDeadline(time.Now().Add(30 * time.Second))
	sum, err := transit.ReceiveData(c, &got, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("received %d bytes via %s, sha256 %s", got.Len(), c.Describe(), hex.EncodeToString(sum))
	return got.Bytes(), sum
}

// TestSendToPythonReceive: our sender (the wormhole and transit APIs) sends
// a file to a real `wormhole receive --accept-file`, through the reference
// transit relay (neither side listens: --no-listen keeps the Python side off
// non-loopback interface addresses); the file it writes matches.
func TestSendToPythonReceive(t *testing.T) {
	t.Parallel()
	py := testutil.RequireBinary(t, "wormhole")
	relay, mb := needRelay(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	data := randomBytes(t, 1<<20+777)
	out := filepath.Join(t.TempDir(), "received.bin")
	const code = "61-sender-test"
	recv := testutil.Start(t, testutil.Command(ctx, py, "--relay-url", mb.URL, "--transit-helper", "tcp:"+relay.Addr,
		"receive", "--no-listen", "--accept-file", "--output-file", out, code))

	w, err := wormhole.Join(ctx, wormhole.Config{URL: mb.URL}, code)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	key, err := w.TransitKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTransit(t, transit.Config{Role: transit.Sender, Key: key, Relays: []string{relay.Addr}})
	for _, m := range []map[string]any{
		{"transit": tr.Message()},
		{"offer": map[string]any{"file": map[string]any{"filename": "payload.bin", "filesize": len(data)}}},
	} {
		b, _ := json.Marshal(m)
		if err := w.Send(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var peer *transit.Message
	acked := false
	for peer == nil || !acked {
		b, err := w.Receive(ctx)
		if err != nil {
			t.Fatalf("waiting for the receiver's transit and file_ack: %v\n%s", err, recv.Output())
		}
		var m struct {
			Transit json.RawMessage `json:"transit"`
			Answer  struct {
				FileAck string `json:"file_ack"`
			} `json:"answer"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("receiver's message %s: %v", b, err)
		}
		if m.Transit != nil {
			if peer, err = transit.ParseMessage(m.Transit); err != nil {
				t.Fatal(err)
			}
		}
		acked = acked || m.Answer.FileAck == "ok"
	}
	c, err := tr.Connect(ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.NetConn().SetDeadline(time.Now().Add(30 * time.Second))
	if err := transit.SendData(c, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("SendData via %s: %v\n%s", c.Describe(), err, recv.Output())
	}
	if err := recv.Wait(); err != nil {
		t.Fatalf("wormhole receive: %v\n%s", err, recv.Output())
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("wormhole receive wrote %d bytes (%v), we sent %d", len(got), err, len(data))
	}
}
