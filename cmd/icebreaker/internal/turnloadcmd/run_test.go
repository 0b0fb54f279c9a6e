package turnloadcmd

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{
		Server: netip.MustParseAddrPort("127.0.0.1:3478"), Timeout: time.Second,
		Allocations: 2, Concurrency: 1, Size: HeaderLen, Rate: 1, Duration: time.Second, Mode: ModeChannel,
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no server":              func(c *Config) { c.Server = netip.AddrPort{} },
		"zero timeout":           func(c *Config) { c.Timeout = 0 },
		"one allocation no peer": func(c *Config) { c.Allocations = 1 },
		"too many allocations":   func(c *Config) { c.Allocations = MaxAllocations + 1 },
		"zero concurrency":       func(c *Config) { c.Concurrency = 0 },
		"size below header":      func(c *Config) { c.Size = HeaderLen - 1 },
		"size too big":           func(c *Config) { c.Size = MaxSize + 1 },
		"NaN rate":               func(c *Config) { c.Rate = math.NaN() },
		"rate too high":          func(c *Config) { c.Rate = 2 * MaxRate },
		"duration too long":      func(c *Config) { c.Duration = MaxDuration + 1 },
		"bad mode":               func(c *Config) { c.Mode = "dtls" },
		"loss above 100":         func(c *Config) { c.MaxLoss = 101 },
		"NaN loss":               func(c *Config) { c.MaxLoss = math.NaN() },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if rep, err := Run(t.Context(), c); err == nil || rep != nil {
			t.Errorf("%s: Run returned %v, %v", name, rep, err)
		}
	}
	c := ok
	c.Allocations, c.Peer = 1, netip.MustParseAddrPort("127.0.0.1:7")
	if err := c.Validate(); err != nil {
		t.Errorf("one allocation with a peer: %v", err)
	}
}
