package transitrelay_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/wormhole/transitrelay"
)

// startRelay runs the relay with cfg for the test (refpeers stops it at
// cleanup) and checks, after it stopped, that it left no goroutine.
func startRelay(t *testing.T, cfg transitrelay.Config) (*transitrelay.Relay, string) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, before) }) // runs after the relay's own cleanup
	return refpeers.StartOurTransitRelayWith(t, cfg)
}

// side connects and sends the handshake.
func side(t *testing.T, addr, line string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	got, err := r.ReadString('\n')
	if err != nil || got != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

const token = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

func TestRelayPairs(t *testing.T) {
	r, addr := startRelay(t, transitrelay.Config{})
	a, ar := side(t, addr, "please relay "+token+" for side 0123456789abcdef\n")
	b, br := side(t, addr, "please relay "+token+" for side fedcba9876543210\n")
	expectLine(t, ar, "ok\n")
	expectLine(t, br, "ok\n")
	payload := bytes.Repeat([]byte("icebreaker"), 100000)
	go func() {
		a.Write(payload)
		a.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(br)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("b read %d bytes (%v), want %d", len(got), err, len(payload))
	}
	io.WriteString(b, "ack")
	b.(*net.TCPConn).CloseWrite()
	if got, _ := io.ReadAll(ar); string(got) != "ack" {
		t.Fatalf("a read %q", got)
	}
	st := r.Stats()
	if st.Paired != 1 || st.Bytes != uint64(len(payload)+3) {
		t.Errorf("stats %+v", st)
	}
}

func TestRelayLimits(t *testing.T) {
	t.Run("same side waits", func(t *testing.T) {
		r, addr := startRelay(t, transitrelay.Config{MaxWait: 200 * time.Millisecond})
		_, ar := side(t, addr, "please relay "+token+" for side 01\n")
		_, br := side(t, addr, "please relay "+token+" for side 01\n")
		for _, rd := range []*bufio.Reader{ar, br} {
			if got, err := rd.ReadString('\n'); err == nil {
				t.Errorf("a lonely side got %q", got)
			}
		}
		if st := r.Stats(); st.Lonely != 2 || st.Paired != 0 || st.Waiting != 0 {
			t.Errorf("stats %+v, want 2 lonely", st)
		}
	})
	t.Run("bad handshakes", func(t *testing.T) {
		r, addr := startRelay(t, transitrelay.Config{})
		for _, line := range []string{"hello\n", "please relay zz for side 01\n", "please relay " + strings.Repeat("a", 300) + "\n", "GET / HTTP/1.1\r\n\r\n"} {
			_, rd := side(t, addr, line)
			if got, _ := rd.ReadString('\n'); got != "bad handshake\n" {
				t.Errorf("%q: got %q", line, got)
			}
		}
		if st := r.Stats(); st.BadHandshake != 4 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("byte budget", func(t *testing.T) {
		r, addr := startRelay(t, transitrelay.Config{MaxBytes: 1000})
		a, ar := side(t, addr, "please relay "+token+" for side 01\n")
		_, br := side(t, addr, "please relay "+token+" for side 02\n")
		expectLine(t, ar, "ok\n")
		expectLine(t, br, "ok\n")
		a.Write(make([]byte, 5000))
		got, _ := io.ReadAll(br)
		if len(got) > 1000 {
			t.Errorf("relayed %d bytes over a budget of 1000", len(got))
		}
		waitStats(t, r, func(st transitrelay.Stats) bool { return st.OverBudget == 1 && st.Pairs == 0 })
	})
	t.Run("time budget", func(t *testing.T) {
		r, addr := startRelay(t, transitrelay.Config{MaxDuration: 300 * time.Millisecond})
		_, ar := side(t, addr, "please relay "+token+" for side 01\n")
		_, br := side(t, addr, "please relay "+token+" for side 02\n")
		expectLine(t, ar, "ok\n")
		expectLine(t, br, "ok\n")
		if _, err := ar.ReadByte(); err == nil { // the pair ends at its deadline
			t.Error("read a byte nobody sent")
		}
		waitStats(t, r, func(st transitrelay.Stats) bool { return st.OverBudget == 1 && st.Pairs == 0 })
	})
	t.Run("connections per address", func(t *testing.T) {
		r, addr := startRelay(t, transitrelay.Config{ConnsPerIP: 2})
		side(t, addr, "please relay "+token+" for side 01\n")
		side(t, addr, "please relay "+token+"00 for side 01\n")
		waitStats(t, r, func(st transitrelay.Stats) bool { return st.Waiting == 2 })
		_, rd := side(t, addr, "please relay "+token+"11 for side 01\n")
		if got, _ := rd.ReadString('\n'); !strings.Contains(got, "too many connections") {
			t.Errorf("third connection got %q", got)
		}
	})
}

func waitStats(t *testing.T, r *transitrelay.Relay, cond func(transitrelay.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(r.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", r.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
