package mailbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// dialFrom dials as client address ip, through the trusted header.
func dialFrom(t testing.TB, url, ip string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {"203.0.113.99, " + ip}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 24)
	t.Cleanup(func() { ws.CloseNow() })
	return &client{t: t, ws: ws}
}

func bindFrom(t testing.TB, url, ip, side string) (*client, map[string]any) {
	c := dialFrom(t, url, ip)
	w := c.next("welcome")
	c.send(map[string]any{"type": "bind", "appid": "a", "side": side})
	c.next("ack")
	return c, w
}

func errorOf(t testing.TB, c *client) string {
	t.Helper()
	e := c.next("error")
	s, _ := e["error"].(string)
	return s
}

func TestLimits(t *testing.T) {
	s, url := startServer(t, Config{MaxMessageSize: 1024, MaxMessages: 3, MailboxesPerIP: 2, ConnsPerIP: 4,
		ClientIPHeader: "X-Forwarded-For"})

	t.Run("message size", func(t *testing.T) {
		a, _ := bindFrom(t, url, "192.0.2.1", "a")
		other, _ := bindFrom(t, url, "192.0.2.2", "b")
		a.send(map[string]any{"type": "claim", "nameplate": "5"})
		mb := a.next("claimed")["mailbox"]
		a.send(map[string]any{"type": "open", "mailbox": mb})
		a.send(map[string]any{"type": "add", "phase": "0", "body": strings.Repeat("ab", 1000)})
		if e := errorOf(t, a); !strings.Contains(e, "message too large: at most 1024 bytes") {
			t.Errorf("oversized: %q", e)
		}
		a.send(map[string]any{"type": "add", "phase": "0", "body": "abcd"})
		if m := a.next("message"); m["body"] != "abcd" {
			t.Errorf("after the error: %v", m)
		}
		// Beyond four times the limit the frame is not even read: the
		// connection ends, the others carry on.
		a.sendRaw(websocket.MessageText, make([]byte, 8192))
		if _, err := a.read(); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Errorf("huge frame: %v, want close 1009", err)
		}
		other.send(map[string]any{"type": "ping", "ping": 7})
		other.next("pong")
	})
	t.Run("messages per mailbox", func(t *testing.T) {
		a, _ := bindFrom(t, url, "192.0.2.3", "a")
		a.send(map[string]any{"type": "open", "mailbox": "full"})
		for i := range 3 {
			a.send(map[string]any{"type": "add", "phase": fmt.Sprint(i), "body": "00"})
			a.next("message")
		}
		a.send(map[string]any{"type": "add", "phase": "3", "body": "00"})
		if e := errorOf(t, a); !strings.Contains(e, "mailbox full") {
			t.Errorf("fourth message: %q", e)
		}
	})
	t.Run("mailboxes per address", func(t *testing.T) {
		// Two IPv6 addresses of one /64 count as one client.
		for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2"} {
			c, _ := bindFrom(t, url, ip, "s")
			c.send(map[string]any{"type": "allocate"})
			c.next("allocated")
			_ = i
		}
		c, _ := bindFrom(t, url, "2001:db8:1:2::3", "s")
		c.send(map[string]any{"type": "allocate"})
		if e := errorOf(t, c); !strings.Contains(e, "too many open mailboxes from your address (at most 2)") {
			t.Errorf("third mailbox: %q", e)
		}
		// Another /64 is another client.
		d, _ := bindFrom(t, url, "2001:db8:1:3::1", "s")
		d.send(map[string]any{"type": "allocate"})
		d.next("allocated")
	})
	t.Run("connections per address", func(t *testing.T) {
		for range 4 {
			bindFrom(t, url, "198.51.100.7", "c")
		}
		c := dialFrom(t, url, "198.51.100.7")
		w := c.next("welcome")["welcome"].(map[string]any)
		if e, _ := w["error"].(string); !strings.Contains(e, "too many connections from your address") {
			t.Errorf("fifth connection's welcome: %v", w)
		}
	})
	st := s.Stats()
	if st.TooLarge == 0 || st.MailboxFull == 0 || st.MailboxesRefused == 0 || st.Refused == 0 {
		t.Errorf("limits not counted: %+v", st)
	}
}

func TestRateLimit(t *testing.T) {
	s, url := startServer(t, Config{Rate: 1, Burst: 3})
	c := dial(t, url)
	for i := range 6 {
		c.send(map[string]any{"type": "ping", "ping": i})
	}
	var pongs, limited int
	for pongs+limited < 6 {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m["type"] == "pong":
			pongs++
		case m["type"] == "error" && strings.HasPrefix(m["error"].(string), "rate limit"):
			limited++
		case m["type"] == "ack":
			continue
		}
	}
	if st := s.Stats(); pongs < 3 || limited == 0 || st.RateLimited != uint64(limited) || st.Limiter.RateRefused == 0 {
		t.Errorf("%d pongs, %d refused; want the burst of 3 answered and the rest refused", pongs, limited)
	}
}

func TestBadInput(t *testing.T) {
	s, url := startServer(t, Config{})
	c := dial(t, url)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not JSON", `{"type": "bind", `, "malformed message"},
		{"not an object", `[1, 2, 3]`, "malformed message"},
		{"null", `null`, "malformed message: missing 'type'"},
		{"no type", `{"id": "1"}`, "malformed message: missing 'type'"},
		{"type not a string", `{"type": 5}`, "malformed message"},
		{"before bind", `{"type": "allocate"}`, "must bind first"},
		{"bind without side", `{"type": "bind", "appid": "x"}`, "bind requires 'side'"},
		{"bind", `{"type": "bind", "appid": "x", "side": "s"}`, "ack"},
		{"bind twice", `{"type": "bind", "appid": "x", "side": "s"}`, "already bound"},
		{"unknown type", `{"type": "teleport"}`, "unknown type"},
		{"nameplate not a string", `{"type": "claim", "nameplate": 5}`, "malformed message"},
		{"long side", `{"type": "claim", "nameplate": "` + strings.Repeat("9", 300) + `"}`, "malformed message: 'nameplate' is 300 bytes long"},
		{"ping without ping", `{"type": "ping"}`, "ping requires 'ping'"},
		{"close before open", `{"type": "close"}`, "close without mailbox must follow open"},
		{"release before claim", `{"type": "release"}`, "release without nameplate must follow claim"},
		{"invalid UTF-8", "{\"type\": \"ping\", \"ping\": \"\xff\"}", "pong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(websocket.MessageText, []byte(tc.in))
			for {
				m, err := c.read()
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case m["type"] == tc.want: // the answer of a good message
					return
				case m["type"] == "ack":
					continue
				case m["type"] != "error":
					t.Fatalf("got %v", m)
				}
				if _, ok := m["orig"]; !ok || !strings.HasPrefix(m["error"].(string), tc.want) {
					t.Fatalf("error %v, want %q with orig", m, tc.want)
				}
				return
			}
		})
	}
	c.sendRaw(websocket.MessageBinary, []byte(`{"type": "ping", "ping": 1}`))
	if e := errorOf(t, c); !strings.Contains(e, "binary frame") {
		t.Errorf("binary frame: %q", e)
	}
	c.send(map[string]any{"type": "ping", "ping": 2})
	c.next("pong")
	if st := s.Stats(); st.Errors < 14 || st.Binary != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestClientThatNeverReads: a client that sends without reading its
// answers is cut off once its queue (bounded) is full or a write is stuck
// for WriteTimeout; the server and other clients carry on.
func TestClientThatNeverReads(t *testing.T) {
	s, url := startServer(t, Config{Rate: 1e6, Burst: 1e6, WriteTimeout: 200 * time.Millisecond,
		MaxMailboxBytes: 1024, MaxMessages: 1})
	// A small receive buffer, so that the kernel does not buffer
	// megabytes on the client's behalf.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = setRcvBuf(fd, 4096) })
		return serr
	}}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	c := &client{t: t, ws: ws}
	// Each answer quotes its 60 kB request: the queue fills fast.
	ping := []byte(`{"type":"ping","pad":"` + strings.Repeat("x", 60000) + `"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2000 && s.Stats().SlowClients == 0; i++ {
		if err := c.ws.Write(ctx, websocket.MessageText, ping); err != nil {
			break // cut off
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().SlowClients != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the slow client was not cut off: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := dial(t, url)
	other.send(map[string]any{"type": "ping", "ping": 1})
	other.next("pong")
}

// TestIdleConnections: 1,000 connections that say nothing cost a bounded
// amount of memory each, and the server still serves.
func TestIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	s, url := startServer(t, Config{ConnsPerIP: 2000})
	c := bound(t, url, "x") // the server runs, with one connection
	base := runtime.NumGoroutine()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 1000
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		conns = append(conns, dial(t, url).ws)
	}
	waitFor(t, "every connection", func() bool { return s.Stats().Connections == n+1 })
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	t.Logf("%d idle connections: %d bytes of heap each (client and server ends together)", n, per)
	if per > 256<<10 {
		t.Errorf("%d bytes per idle connection", per)
	}
	c.send(map[string]any{"type": "allocate"})
	c.next("allocated")
	for _, ws := range conns {
		ws.CloseNow()
	}
	waitFor(t, "the connections to close", func() bool { return s.Stats().Connections == 1 })
	// A closed connection leaves nothing behind while the server runs on.
	if err := testutil.SettleGoroutines(base, 5*time.Second); err != nil {
		t.Error(err)
	}
}

// TestHTTPHandler: Config.HTTP answers the paths beside /v1, and its
// requests take from the same per-address rate as the WebSocket commands.
func TestHTTPHandler(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "page at "+r.URL.Path) })
	s, url := startServer(t, Config{Rate: 0.001, Burst: 3, HTTP: page})
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(url, "ws"), Path)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.String()
	}
	for i := range 3 {
		if code, body := get("/some/page"); code != http.StatusOK || body != "page at /some/page" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if code, body := get("/some/page"); code != http.StatusTooManyRequests {
		t.Fatalf("beyond the burst: %d %q", code, body)
	}
	c := dial(t, url) // the WebSocket still connects: connections are not rate-limited
	c.send(map[string]any{"type": "ping", "ping": 1})
	for {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if m["type"] == "ack" || m["type"] == "welcome" {
			continue
		}
		if m["type"] != "error" || !strings.HasPrefix(m["error"].(string), "rate limit") {
			t.Fatalf("a command after the HTTP requests took the burst: %v", m)
		}
		break
	}
	if st := s.Stats(); st.RateLimited != 2 {
		t.Errorf("RateLimited = %d, want 2 (one HTTP request, one command)", st.RateLimited)
	}

	_, url = startServer(t, Config{})
	resp, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(url, "ws"), Path) + "/some/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("without Config.HTTP: %d, want 404", resp.StatusCode)
	}
}
