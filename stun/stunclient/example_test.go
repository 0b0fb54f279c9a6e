package stunclient_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
)

// A Binding request asks a STUN server which address it sees the client
// as: the server-reflexive address (RFC 8489, Section 3). Here the server
// runs in process on loopback, so that address is the client's own.
func ExampleClient_Binding() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A STUN server on a free UDP port of 127.0.0.1.
	srv, err := stunserver.Listen(stunserver.Config{UDP: netip.MustParseAddrPort("127.0.0.1:0"), UDPSockets: 1})
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { srv.Close(); <-served }()
	server := srv.Addrs()[0].Addr

	// The client owns its socket: Close closes it.
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		log.Fatal(err)
	}
	c, err := stunclient.New(conn, stunclient.Config{})
	if err != nil {
		conn.Close()
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Binding(ctx, server)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("server-reflexive address:", res.Mapped.Addr())
	fmt.Println("same as the local address:", res.Mapped == res.Local)
	fmt.Println("answered by the server:", res.Server == server)
	// Output:
	// server-reflexive address: 127.0.0.1
	// same as the local address: true
	// answered by the server: true
}

// TestExamplesLeaveNoGoroutine checks that the examples stop everything
// they start.
func TestExamplesLeaveNoGoroutine(t *testing.T) {
	testutil.CheckExamples(t, ExampleClient_Binding)
}
