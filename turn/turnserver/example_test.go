package turnserver_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// A TURN server is the Handler of a STUN server: the STUN server's
// listeners answer Binding requests themselves and pass every other
// method, and ChannelData, to the TURN server, which relays over sockets of
// its own. Here both run on loopback, over UDP and TCP, with long-term
// credentials and TURN REST credentials, and the default deny policy
// (no loopback, private or special-purpose peers, and never the server's
// own listeners).
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	auth, err := turnauth.New(turnauth.Config{
		Realm:       "example.org",
		Users:       turnauth.StaticUsers{"alice": "secret"},
		RESTSecrets: []string{"shared-with-the-web-app"},
	})
	if err != nil {
		log.Fatal(err)
	}
	pol, err := policy.New(policy.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ts, err := turnserver.New(turnserver.Config{
		Auth:      auth,
		Policy:    pol,
		RelayIPv4: netip.MustParseAddr("127.0.0.1"),
		Software:  "example",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close() // after the STUN server: deletes the allocations left

	ss, err := stunserver.Listen(stunserver.Config{
		UDP:        netip.MustParseAddrPort("127.0.0.1:0"),
		TCP:        netip.MustParseAddrPort("127.0.0.1:0"),
		UDPSockets: 1,
		Handler:    ts,
	})
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ss.Serve(ctx) }()
	defer func() { ss.Close(); <-served }()
	var own []netip.AddrPort
	for _, ep := range ss.Addrs() {
		fmt.Println("listening on", ep.Network)
		own = append(own, ep.Addr)
	}
	pol.SetOwn(own)

	// An allocation with REST credentials, over TCP. The Allocate
	// response also carries XOR-MAPPED-ADDRESS, as a Binding response does.
	relay, err := turnclient.Allocate(ctx, turnclient.Config{
		Server:    ss.Addrs()[1].Addr.String(),
		Transport: turnclient.TCP,
		Secret:    "shared-with-the-web-app",
		RESTUser:  "bob",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mapped address:", relay.Mapped().Addr())
	fmt.Println("allocations:", ts.Stats().Allocations)
	relay.Close() // deletes the allocation (Refresh with LIFETIME 0)
	fmt.Println("allocations after Close:", ts.Stats().Allocations)
	// Output:
	// listening on udp
	// listening on tcp
	// mapped address: 127.0.0.1
	// allocations: 1
	// allocations after Close: 0
}

// TestExamplesLeaveNoGoroutine checks that the examples stop everything
// they start.
func TestExamplesLeaveNoGoroutine(t *testing.T) {
	testutil.CheckExamples(t, ExampleNew)
}
