package portmap

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"one protocol", Config{Protocols: []Protocol{UPnP}}, true},
		{"ipv6 gateway", Config{Gateway: netip.MustParseAddr("fe80::1")}, false},
		{"negative timeout", Config{Timeout: -1}, false},
		{"short lifetime", Config{Lifetime: time.Second}, false},
		{"unknown protocol", Config{Protocols: []Protocol{9}}, false},
		{"twice", Config{Protocols: []Protocol{PCP, PCP}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v", err)
			}
			if _, err := New(c.cfg); (err == nil) != c.ok {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

func TestParseProtocol(t *testing.T) {
	for _, p := range []Protocol{PCP, NATPMP, UPnP} {
		if q, err := ParseProtocol(p.String()); err != nil || q != p {
			t.Fatalf("%v: %v %v", p, q, err)
		}
	}
	if _, err := ParseProtocol("igd"); err == nil {
		t.Fatal("accepted igd")
	}
}

// Map refuses addresses no gateway can map, without sending anything.
func TestMapRefusesUnmappable(t *testing.T) {
	c, err := New(Config{Gateway: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"127.0.0.1:4000", "[::1]:4000", "0.0.0.0:4000", "[2001:db8::1]:4000"} {
		if _, err := c.Map(context.Background(), netip.MustParseAddrPort(a)); !errors.Is(err, ErrNotOnGatewayLink) {
			t.Errorf("%s: %v", a, err)
		}
	}
}

// fakeMapper records the calls of a Mapping's renewals and deletion: the
// schedule under test is the Mapping's, the protocols are tested against
// miniupnpd (natlab_test.go).
type fakeMapper struct {
	mu   sync.Mutex
	adds []time.Duration // when add was called, since start
	dels int
	fail bool
	life time.Duration
	t0   time.Time
}

func (f *fakeMapper) add(ctx context.Context, lifetime time.Duration) (netip.AddrPort, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adds = append(f.adds, time.Since(f.t0))
	if f.fail {
		return netip.AddrPort{}, 0, errors.New("no answer")
	}
	return netip.MustParseAddrPort("11.0.0.10:4000"), f.life, nil
}

func (f *fakeMapper) del(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dels++
	return nil
}

// TestMappingRenewal: renewals at half the granted lifetime; a failed one
// is retried at half the time left (at least a second later); Close stops
// them and deletes the mapping once.
func TestMappingRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{Gateway: netip.MustParseAddr("192.0.2.1")})
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeMapper{life: 10 * time.Second, t0: time.Now()}
		m := newMapping(c, PCP, c.cfg.Gateway, netip.MustParseAddrPort("10.9.1.2:4000"), f, netip.MustParseAddrPort("11.0.0.10:4000"), 10*time.Second)
		time.Sleep(11 * time.Second) // renewals at 5 s and 10 s
		synctest.Wait()
		if n, exp := m.Renewals(); n != 2 || exp.Sub(f.t0) != 20*time.Second {
			t.Fatalf("after 11 s: %d renewals, expiry at %v", n, exp.Sub(f.t0))
		}
		f.mu.Lock()
		f.fail = true
		f.mu.Unlock()
		time.Sleep(8 * time.Second) // fails at 15 s (5 s left: retry at 17.5 s), then at 17.5 s (2.5 s left: retry at 18.75 s)
		synctest.Wait()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		want := []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 17500 * time.Millisecond, 18750 * time.Millisecond}
		if !slices.Equal(f.adds, want) || f.dels != 1 {
			t.Fatalf("adds at %v, %d deletions; want %v and 1", f.adds, f.dels, want)
		}
	})
}
