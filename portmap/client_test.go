package portmap

import (
	"context"
	"errors"
	"net/netip"
	"testing"
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
