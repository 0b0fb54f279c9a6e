package iplimit

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func mustNew(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		addr string
		bits int
		want string
	}{
		{"ipv4", "192.0.2.7", 64, "192.0.2.7/32"},
		{"mapped ipv4", "::ffff:192.0.2.7", 64, "192.0.2.7/32"},
		{"ipv6 /64", "2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"ipv6 zone dropped", "fe80::1%eth0", 64, "fe80::/64"},
		{"ipv6 /128", "2001:db8::9", 128, "2001:db8::9/128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Key(netip.MustParseAddr(tt.addr), tt.bits)
			if got.String() != tt.want {
				t.Fatalf("Key(%s, %d) = %s, want %s", tt.addr, tt.bits, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{MaxConns: -1}, {Rate: -1}, {Burst: -2}, {MaxKeys: -1}, {IPv6Prefix: 129}, {IPv6Prefix: -1},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted a bad config", c)
		}
	}
	if _, err := New(Config{}); err != nil {
		t.Fatalf("zero Config refused: %v", err)
	}
}

func TestAcquireRelease(t *testing.T) {
	l := mustNew(t, Config{MaxConns: 2})
	a := netip.MustParseAddr("192.0.2.1")
	a6 := netip.MustParseAddr("2001:db8::1")
	a6same64 := netip.MustParseAddr("2001:db8::ffff")
	for i := range 2 {
		if err := l.Acquire(a); err != nil {
			t.Fatalf("Acquire %d: %v", i, err)
		}
	}
	if err := l.Acquire(a); !errors.Is(err, ErrTooManyConns) {
		t.Fatalf("third Acquire: %v, want ErrTooManyConns", err)
	}
	// Another address is not affected; an IPv6 /64 counts as one client.
	if err := l.Acquire(netip.MustParseAddr("192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(a6); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(a6same64); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(netip.MustParseAddr("2001:db8::2")); !errors.Is(err, ErrTooManyConns) {
		t.Fatalf("third address of one /64: %v, want ErrTooManyConns", err)
	}
	l.Release(a)
	if err := l.Acquire(a); err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	st := l.Stats()
	if st.ConnsRefused != 2 || st.Keys != 3 {
		t.Fatalf("Stats = %+v, want 2 refused and 3 keys", st)
	}
	// Releasing everything empties the table (no rate: nothing to keep).
	l.Release(a)
	l.Release(a)
	l.Release(a) // one too many: ignored
	l.Release(netip.MustParseAddr("192.0.2.2"))
	l.Release(a6)
	l.Release(a6same64)
	if n := l.Stats().Keys; n != 0 {
		t.Fatalf("%d keys left after every Release", n)
	}
}

func TestAllowRate(t *testing.T) {
	now := time.Unix(1000, 0)
	l := mustNew(t, Config{Rate: 10, Burst: 3, Now: func() time.Time { return now }})
	a := netip.MustParseAddr("198.51.100.4")
	for i := range 3 {
		if !l.Allow(a) {
			t.Fatalf("burst event %d refused", i)
		}
	}
	if l.Allow(a) {
		t.Fatal("fourth event at the same instant allowed")
	}
	// 100 ms at 10/s brings back one token, and no more.
	now = now.Add(100 * time.Millisecond)
	if !l.Allow(a) {
		t.Fatal("event after refill refused")
	}
	if l.Allow(a) {
		t.Fatal("second event after one token's refill allowed")
	}
	// Another address has its own bucket.
	if !l.Allow(netip.MustParseAddr("198.51.100.5")) {
		t.Fatal("another address refused")
	}
	if got := l.Stats().RateRefused; got != 2 {
		t.Fatalf("RateRefused = %d, want 2", got)
	}
}

func TestTableBounded(t *testing.T) {
	now := time.Unix(2000, 0)
	l := mustNew(t, Config{MaxConns: 1, Rate: 1, Burst: 1, MaxKeys: 4, Now: func() time.Time { return now }})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	for i := range 4 {
		if !l.Allow(addr(i)) {
			t.Fatalf("address %d refused", i)
		}
	}
	// Full of active keys (their buckets are empty): a new one is refused.
	if l.Allow(addr(10)) {
		t.Fatal("new address allowed into a full table")
	}
	if err := l.Acquire(addr(11)); !errors.Is(err, ErrFull) {
		t.Fatalf("Acquire into a full table: %v, want ErrFull", err)
	}
	// Once the buckets are full again the keys are idle and make room.
	now = now.Add(2 * time.Second)
	if !l.Allow(addr(10)) {
		t.Fatal("new address refused after the old ones went idle")
	}
	st := l.Stats()
	if st.Keys > 4 || st.FullRefused != 2 {
		t.Fatalf("Stats = %+v, want at most 4 keys and 2 full refusals", st)
	}
}

func TestNilLimiterAllows(t *testing.T) {
	var l *Limiter
	a := netip.MustParseAddr("192.0.2.1")
	if err := l.Acquire(a); err != nil {
		t.Fatal(err)
	}
	l.Release(a)
	if !l.Allow(a) {
		t.Fatal("nil limiter refused")
	}
	if (l.Stats() != Stats{}) {
		t.Fatal("nil limiter has stats")
	}
}

func TestConcurrent(t *testing.T) {
	l := mustNew(t, Config{MaxConns: 1000, Rate: 1e6, MaxKeys: 64})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
			for range 1000 {
				if err := l.Acquire(a); err == nil {
					l.Release(a)
				}
				l.Allow(a)
			}
		}()
	}
	wg.Wait()
	if st := l.Stats(); st.ConnsRefused != 0 {
		t.Fatalf("Stats = %+v, want no connection refused", st)
	}
}

func TestAllowNoAllocs(t *testing.T) {
	l := mustNew(t, Config{Rate: 1e9, Burst: 1 << 20})
	a := netip.MustParseAddr("2001:db8::1")
	l.Allow(a)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(a) }); n != 0 {
		t.Fatalf("Allow allocates %v times per call", n)
	}
}

func FuzzKey(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, 64)
	f.Add(make([]byte, 16), 0)
	f.Fuzz(func(t *testing.T, b []byte, bits int) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		bits = bits % 129
		if bits < 0 {
			bits = -bits
		}
		k := Key(a, bits)
		if k.IsValid() && !k.Contains(a.Unmap().WithZone("")) {
			t.Fatalf("Key(%s, %d) = %s does not contain the address", a, bits, k)
		}
	})
}
