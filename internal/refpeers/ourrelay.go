package refpeers

import (
	"context"
	"net"
	"testing"

	"github.com/icebreaker-net/icebreaker/wormhole/transitrelay"
)

// StartOurTransitRelay runs this module's transit relay
// (wormhole/transitrelay, default limits) on a free loopback port for the
// test, beside or instead of the reference one; it stops at cleanup, and
// Serve's error is reported then. It returns the relay (for its Stats) and
// its address.
func StartOurTransitRelay(t testing.TB) (*transitrelay.Relay, string) {
	t.Helper()
	return StartOurTransitRelayWith(t, transitrelay.Config{})
}

// StartOurTransitRelayWith is StartOurTransitRelay with the limits of cfg.
func StartOurTransitRelayWith(t testing.TB, cfg transitrelay.Config) (*transitrelay.Relay, string) {
	t.Helper()
	r, err := transitrelay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("our transit relay: %v", err)
		}
	})
	return r, ln.Addr().String()
}
