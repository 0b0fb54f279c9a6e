package ratelog

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOneLinePerSourceAndReason(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Interval: time.Second, Now: c.now})
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	for range 1000 {
		l.Log(a, "unknown_user", "turn auth failed", slog.String("user", "mallory"))
	}
	l.Log(a, "bad_integrity", "turn auth failed")
	l.Log(b, "unknown_user", "turn auth failed")
	// Two addresses of one IPv6 /64 are one source.
	l.Log(netip.MustParseAddr("2001:db8::1"), "unknown_user", "turn auth failed")
	l.Log(netip.MustParseAddr("2001:db8::2"), "unknown_user", "turn auth failed")
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Fatalf("%d lines, want 4:\n%s", got, buf.String())
	}
	c.add(time.Second)
	buf.Reset()
	l.Log(a, "unknown_user", "turn auth failed")
	if !strings.Contains(buf.String(), "suppressed=999") || !strings.Contains(buf.String(), "source=192.0.2.1") {
		t.Errorf("line %q lacks the suppressed count", buf.String())
	}
	st := l.Stats()
	if st.Written != 5 || st.Suppressed != 1000 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestTableBounded(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Interval: time.Second, MaxKeys: 10, Now: c.now})
	for i := range 100 {
		l.Log(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), "r", "m")
	}
	if st := l.Stats(); st.Written != 10 || st.Dropped != 90 || len(l.keys) != 10 {
		t.Fatalf("Stats = %+v, %d keys", st, len(l.keys))
	}
	// Once the interval passed, idle keys make room.
	c.add(time.Second)
	l.Log(netip.MustParseAddr("10.0.1.1"), "r", "m")
	if st := l.Stats(); st.Written != 11 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestNilAndSilent(t *testing.T) {
	var l *Logger
	l.Log(netip.MustParseAddr("192.0.2.1"), "r", "m")
	silent := New(Config{})
	if n := testing.AllocsPerRun(100, func() { silent.Log(netip.MustParseAddr("192.0.2.1"), "r", "m") }); n != 0 {
		t.Errorf("silent Log allocates %v", n)
	}
}
