package turnclient

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestAllocateRetriesMismatch: a client that died without deleting its
// allocation leaves it on the server; a new client whose socket gets the
// same port (the kernel gives ports out again) is refused with 437
// (RFC 8656, Section 7.2), and Allocate tries once more from a new port
// (Section 7.3), against coturn and against our server.
func TestAllocateRetriesMismatch(t *testing.T) {
	t.Run("coturn", func(t *testing.T) {
		s := startCoturn(t, coturnOpts{args: []string{"--lt-cred-mech", "--user=u:p"}})
		testMismatchRetry(t, s.addr)
	})
	t.Run("ours", func(t *testing.T) {
		checkNoLeak(t)
		s := startOurs(t, ourOpts{})
		testMismatchRetry(t, s.udp)
	})
}

// testMismatchRetry leaves a stale allocation from a fixed port, then
// allocates with the first socket on that port again.
func testMismatchRetry(t *testing.T, server netip.AddrPort) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	port := testutil.FreePort(t)
	fixed := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	var calls atomic.Int32
	cfg := Config{Server: server.String(), Username: "u", Password: "p"}
	// The first two sockets (the stale client's, then the new client's
	// first try) get the fixed port, later ones an ephemeral port.
	cfg.listenUDP = func(network string) (*net.UDPConn, error) {
		if calls.Add(1) <= 2 {
			return net.ListenUDP(network, fixed)
		}
		return net.ListenUDP(network, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	}

	stale, err := Allocate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The client dies: its socket closes before it could delete the
	// allocation, which the server keeps for its lifetime.
	stale.udp.Close()
	stale.Close()

	r, err := Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate after a stale allocation on port %d: %v", port, err)
	}
	defer r.Close()
	if got := calls.Load(); got != 3 {
		t.Errorf("%d sockets opened, want 3 (stale, refused with 437, retry)", got)
	}
	if local := r.udp.LocalAddr().(*net.UDPAddr).Port; local == port {
		t.Errorf("the allocation is on the stale port %d", port)
	}
	if peer := r.Relayed(); len(peer) == 0 || !peer[0].IsValid() {
		t.Errorf("no relayed address: %v", peer)
	}
}
