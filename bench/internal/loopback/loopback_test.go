package loopback

import (
	"errors"
	"net/netip"
	"testing"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{"127.0.0.1:3478", "127.0.0.1:3478"},
		{"127.1.2.3:9", "127.1.2.3:9"},
		{"[::1]:3478", "[::1]:3478"},
		{"[::ffff:127.0.0.1]:3478", "127.0.0.1:3478"},
		{"", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:0", ""},
		{"localhost:3478", ""},
		{"0.0.0.0:3478", ""},
		{"[::]:3478", ""},
		{"10.0.0.1:3478", ""},
		{"192.0.2.1:3478", ""},
		{"[::ffff:192.0.2.1]:3478", ""},
		{"[2001:db8::1]:3478", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Target(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Errorf("accepted %v", got)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
	if _, err := Target("192.0.2.1:1"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("error %v does not wrap ErrNotLoopback", err)
	}
	if _, err := IP("192.0.2.1"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("LoopbackIP: error %v does not wrap ErrNotLoopback", err)
	}
	if a, err := IP("127.0.0.2"); err != nil || a != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("IP(127.0.0.2) = %v, %v", a, err)
	}
	if err := Check(netip.MustParseAddrPort("203.0.113.5:50000")); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("CheckLoopback accepted a public relayed address: %v", err)
	}
}

// TestRequestsParse checks that every request builds into a message that
// parses, carries FINGERPRINT, and carries valid MESSAGE-INTEGRITY once the
// Auth has learnt a challenge.
