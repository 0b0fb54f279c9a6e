package transit

import (
	"errors"
	"net"
	"testing"
)

func TestParseRelayHint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcp:127.0.0.1:4001", "127.0.0.1:4001"},
		{"tcp:magic-wormhole-transit.debian.net:4001:priority=2.0", "magic-wormhole-transit.debian.net:4001"},
		{"tcp:[::1]:4001", "[::1]:4001"},
		{"127.0.0.1:4001", "127.0.0.1:4001"},
		{"relay:4001", "relay:4001"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRelayHint(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseRelayHint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "tcp:", "tcp:host", "tcp:host:0", "tcp:host:65536", "tcp::4001", "tor:x.onion:80",
		"tcp:[::1", "tcp:[::1]4001", "tcp:host:port", "ws://relay:4000/v1"} {
		if got, err := ParseRelayHint(bad); !errors.Is(err, ErrBadRelayHint) {
			t.Errorf("ParseRelayHint(%q) = %q, %v; want ErrBadRelayHint", bad, got, err)
		}
	}
}

// FuzzParseRelayHint: never panics; what it returns is HOST:PORT and reads
// back as itself.
func FuzzParseRelayHint(f *testing.F) {
	for _, s := range []string{"tcp:127.0.0.1:4001", "tcp:[::1]:4001:priority=1", "host:1", "tcp:h:x", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRelayHint(s)
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(got); err != nil {
			t.Fatalf("ParseRelayHint(%q) = %q, not HOST:PORT: %v", s, got, err)
		}
		again, err := ParseRelayHint("tcp:" + got)
		if err != nil || again != got {
			t.Fatalf("ParseRelayHint(tcp:%s) = %q, %v", got, again, err)
		}
	})
}
