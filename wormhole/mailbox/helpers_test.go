package mailbox

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// startServer runs a Server for cfg on a free loopback port until the test
// ends, and returns it with its ws:// URL.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	return startServerAt(t, cfg, "127.0.0.1:0")
}

// startServerAt is startServer on addr.
func startServerAt(t testing.TB, cfg Config, addr string) (*Server, string) {
	t.Helper()
	before := runtime.NumGoroutine()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		testutil.CheckGoroutines(t, before)
	})
	return s, "ws://" + ln.Addr().String() + Path
}

// startStoppable runs a Server for cfg on a free loopback port until stop
// is called, which shuts it down and closes it as a restart would; it
// returns the listening address and the ws:// URL.
func startStoppable(t testing.TB, cfg Config) (s *Server, addr, url string, stop func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	addr = ln.Addr().String()
	return s, addr, "ws://" + addr + Path, stop
}

// client is a raw protocol client of the tests: it sends JSON and reads
// the server's messages, skipping acks unless asked for them.
type client struct {
	t  testing.TB
	ws *websocket.Conn
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	c := dialRaw(t, url)
	if w := c.next("welcome"); w["welcome"] == nil {
		t.Fatalf("welcome without a welcome: %v", w)
	}
	return c
}

func (c *client) sendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(m map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, b)
}

// read returns the next message from the server.
func (c *client) read() (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, errors.New("binary frame from the server")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// next returns the next message of type typ, failing on an unexpected
// type (acks are skipped unless typ is "ack").
func (c *client) next(typ string) map[string]any {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", typ, err)
		}
		switch m["type"] {
		case typ:
			return m
		case "ack":
			continue
		}
		c.t.Fatalf("got %v, want a %q message", m, typ)
	}
}

// bound dials and binds as side of the text-transfer appid.
func bound(t testing.TB, url, side string) *client {
	c := dial(t, url)
	c.send(map[string]any{"type": "bind", "appid": "lothar.com/wormhole/text-or-file-xfer", "side": side, "id": "1"})
	c.next("ack")
	return c
}

// wormholeCmd returns the real Python client with a private HOME and a
// UTF-8 locale (click refuses to run without one).
func wormholeCmd(ctx context.Context, t testing.TB, bin, url string, args ...string) *exec.Cmd {
	cmd := testutil.Command(ctx, bin, append([]string{"--relay-url", url}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	return cmd
}

// dialRaw dials without reading the welcome.
func dialRaw(t testing.TB, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 24)
	t.Cleanup(func() { ws.CloseNow() })
	return &client{t: t, ws: ws}
}

func (s *Server) hasListenersLocked() bool {
	for _, a := range s.apps {
		for _, mb := range a.mailboxes {
			if len(mb.listeners) > 0 {
				return true
			}
		}
	}
	return false
}
