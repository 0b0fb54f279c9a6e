package turnclient_test

import (
	"context"
	"fmt"
	"log"
	"net"
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

// Allocate returns the allocation as a net.PacketConn: what is written to
// a peer leaves from the relayed address, and what the peer sends there
// comes back through ReadFrom (RFC 8656, Sections 10 to 12). Here the TURN
// server runs in process on loopback, with a policy that lets it relay to
// the loopback peer (the default policy refuses loopback peers).
func ExampleAllocate() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The TURN server: user alice, relaying from 127.0.0.1 to 127.0.0.0/8,
	// as the handler of a STUN server on a free UDP port.
	auth, err := turnauth.New(turnauth.Config{Realm: "example.org", Users: turnauth.StaticUsers{"alice": "secret"}})
	if err != nil {
		log.Fatal(err)
	}
	pol, err := policy.New(policy.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		log.Fatal(err)
	}
	ts, err := turnserver.New(turnserver.Config{Auth: auth, Policy: pol, RelayIPv4: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close()
	ss, err := stunserver.Listen(stunserver.Config{UDP: netip.MustParseAddrPort("127.0.0.1:0"), UDPSockets: 1, Handler: ts})
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ss.Serve(ctx) }()
	defer func() { ss.Close(); <-served }()
	pol.SetOwn([]netip.AddrPort{ss.Addrs()[0].Addr}) // never relay to the server itself

	// A peer: a plain UDP socket.
	peer, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()

	// The client: allocate, then talk to the peer through the relay.
	relay, err := turnclient.Allocate(ctx, turnclient.Config{
		Server:   ss.Addrs()[0].Addr.String(),
		Username: "alice",
		Password: "secret",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer relay.Close()
	relayed := relay.Relayed()[0]

	// The first WriteTo creates the permission for the peer's IP.
	if _, err := relay.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(peerAddr)); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 1500)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("peer got %q from the relayed address: %v\n", buf[:n], from == relayed)

	if _, err := peer.WriteToUDPAddrPort([]byte("hi"), relayed); err != nil {
		log.Fatal(err)
	}
	relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, addr, err := relay.ReadFrom(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("client got %q from the peer: %v\n", buf[:n], addr.(*net.UDPAddr).AddrPort() == peerAddr)
	// Output:
	// peer got "hello" from the relayed address: true
	// client got "hi" from the peer: true
}

// TestExamplesLeaveNoGoroutine checks that the examples stop everything
// they start.
func TestExamplesLeaveNoGoroutine(t *testing.T) {
	testutil.CheckExamples(t, ExampleAllocate)
}
