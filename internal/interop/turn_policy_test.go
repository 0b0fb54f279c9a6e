package interop

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// fastRetransmit keeps lost requests on loopback from costing seconds.
var fastRetransmit = stunclient.Retransmit{RTO: 100 * time.Millisecond}

// TestTurnPolicyFromOutside checks the relay policy of `icebreaker serve`
// as a client on loopback sees it: with the built-in configuration every
// CreatePermission towards loopback, private, special-purpose and embedded
// IPv4 addresses, and every ChannelBind towards the server's own
// addresses, is refused with 403. Each probe sends no data to the peer (a
// permission only installs state), so the public control addresses that
// must be granted see no traffic.
func TestTurnPolicyFromOutside(t *testing.T) {
	t.Parallel()
	icebreaker(t)

	t.Run("default policy", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		listen := []string{"127.0.0.1"}
		v6 := ipv6LoopbackErr() == nil
		if v6 {
			listen = append(listen, "::1")
		}
		srv := startTURNServe(t, ctx, listen)

		t.Run("ipv4 allocation", func(t *testing.T) {
			r := allocate(t, ctx, srv.addr(t, "udp", loopback4), turnclient.IPv4)
			for _, ip := range []string{
				"127.0.0.1", "::ffff:127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1",
				"100.64.0.1", "169.254.169.254", "224.0.0.1", "0.0.0.0", "255.255.255.255",
				"127.0.0.2", "192.0.2.1", "198.18.0.1", "240.0.0.1",
			} {
				checkForbidden(t, ctx, r, ip)
			}
			checkPermitted(t, ctx, r, "1.1.1.1")
		})
		t.Run("ipv6 allocation", func(t *testing.T) {
			if !v6 {
				requireLoopback6(t)
			}
			r := allocate(t, ctx, srv.addr(t, "udp", loopback6), turnclient.IPv6)
			// An IPv4-mapped peer is an IPv4 address once canonicalised,
			// so an IPv6 allocation refuses it with 443 (Peer Address
			// Family Mismatch) before the policy is asked; the IPv4
			// allocation above gets the policy's 403 for it.
			checkRefused(t, ctx, r, "::ffff:127.0.0.1", stun.CodeForbidden, stun.CodePeerAddressFamilyMismatch)
			for _, ip := range []string{
				"::1", "::", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1",
				"2002:7f00:1::", "2002:a00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
				"fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
			} {
				checkForbidden(t, ctx, r, ip)
			}
			checkPermitted(t, ctx, r, "2606:4700:4700::1111")
		})
		t.Run("own addresses", func(t *testing.T) {
			c := newRawTURN(t, ctx, srv.addr(t, "udp", loopback4))
			c.checkChannelBind(t, ctx, 0x4000, srv.addr(t, "udp", loopback4), stun.CodeForbidden)
			c.checkChannelBind(t, ctx, 0x4001, srv.addr(t, "tcp", loopback4), stun.CodeForbidden)
		})
		srv.checkAlive(t)
	})

	// The server's listening addresses stay denied when loopback is
	// allowed explicitly; another port on the same IP is granted, and so
	// is a relayed address (turnserver's documented choice: two clients
	// that both use the relay, as in ICE, reach each other through their
	// relayed addresses).
	t.Run("loopback allowed", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := startTURNServe(t, ctx, []string{"127.0.0.1"}, "--allow-peer", "127.0.0.0/8")
		t.Run("own addresses", func(t *testing.T) {
			c := newRawTURN(t, ctx, srv.addr(t, "udp", loopback4))
			c.checkChannelBind(t, ctx, 0x4000, srv.addr(t, "udp", loopback4), stun.CodeForbidden)
			c.checkChannelBind(t, ctx, 0x4001, srv.addr(t, "tcp", loopback4), stun.CodeForbidden)
			other := netip.AddrPortFrom(loopback4, uint16(freeUDPPort(t, loopback4)))
			c.checkChannelBind(t, ctx, 0x4002, other, 0)
			c.checkChannelBind(t, ctx, 0x4003, c.relayed, 0)
		})
		t.Run("permissions", func(t *testing.T) {
			r := allocate(t, ctx, srv.addr(t, "udp", loopback4), turnclient.IPv4)
			checkPermitted(t, ctx, r, "127.0.0.1")
			checkForbidden(t, ctx, r, "10.0.0.1") // only loopback was allowed
		})
		srv.checkAlive(t)
	})
}

// allocate makes an allocation with turnclient over UDP and closes it in
// the test's cleanup, which must run while the server still runs: Close
// deletes the allocation and waits (bounded) for the answer. So a test
// allocates in a subtest of the one that started the server, whose
// context ends before its cleanups run.
func allocate(t *testing.T, ctx context.Context, server netip.AddrPort, fam turnclient.Family) *turnclient.Relay {
	t.Helper()
	r, err := turnclient.Allocate(ctx, turnclient.Config{
		Server:     server.String(),
		Username:   turnUser,
		Password:   turnPass,
		Family:     fam,
		Retransmit: fastRetransmit,
	})
	if err != nil {
		t.Fatalf("Allocate on %v (%v): %v", server, fam, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// checkForbidden asks for a permission to ip and wants 403.
func checkForbidden(t *testing.T, ctx context.Context, r *turnclient.Relay, ip string) {
	t.Helper()
	err := r.CreatePermission(ctx, netip.MustParseAddr(ip))
	se, ok := errors.AsType[*stun.Error](err)
	if !errors.Is(err, turnclient.ErrForbidden) || !ok || se.Code != stun.CodeForbidden {
		t.Errorf("CreatePermission(%s) = %v, want 403 Forbidden", ip, err)
	}
}

// checkRefused asks for a permission to ip and wants an error response
// with one of the codes.
func checkRefused(t *testing.T, ctx context.Context, r *turnclient.Relay, ip string, codes ...int) {
	t.Helper()
	err := r.CreatePermission(ctx, netip.MustParseAddr(ip))
	if se, ok := errors.AsType[*stun.Error](err); !ok || !slices.Contains(codes, se.Code) {
		t.Errorf("CreatePermission(%s) = %v, want an error response %v", ip, err, codes)
		return
	}
	t.Logf("CreatePermission(%s): %v", ip, err)
}

// checkPermitted asks for a permission to ip and wants it granted.
func checkPermitted(t *testing.T, ctx context.Context, r *turnclient.Relay, ip string) {
	t.Helper()
	if err := r.CreatePermission(ctx, netip.MustParseAddr(ip)); err != nil {
		t.Errorf("CreatePermission(%s) = %v, want success", ip, err)
	}
}

// rawTURN is a UDP allocation made with bare STUN transactions, for
// requests turnclient does not expose (ChannelBind to any address).
type rawTURN struct {
	c       *stunclient.Client
	server  netip.AddrPort
	relayed netip.AddrPort
}

// turnComprehends lists the comprehension-required TURN attributes of
// responses to Allocate and ChannelBind. RFC 8656, Section 18.
func turnComprehends(a stun.AttrType) bool {
	switch a {
	case stun.AttrXORRelayedAddress, stun.AttrLifetime, stun.AttrReservationToken,
		stun.AttrRequestedAddressFamily, stun.AttrEvenPort:
		return true
	}
	return false
}

// newRawTURN allocates over UDP from 127.0.0.1. The test's cleanup closes
// the socket; the allocation goes with the server.
func newRawTURN(t *testing.T, ctx context.Context, server netip.AddrPort) *rawTURN {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := stunclient.New(conn, stunclient.Config{
		Username: turnUser, Password: turnPass,
		Retransmit:  fastRetransmit,
		Fingerprint: true,
		Comprehends: turnComprehends,
	})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	resp, err := c.Do(ctx, server, stun.MethodAllocate, func(b []byte, _ stun.TransactionID) []byte {
		return turn.AppendRequestedTransport(b, turn.ProtoUDP)
	})
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	relayed, err := resp.Message.XORAddress(stun.AttrXORRelayedAddress)
	if err != nil {
		t.Fatalf("Allocate response: XOR-RELAYED-ADDRESS: %v", err)
	}
	rt := &rawTURN{c: c, server: server, relayed: netip.AddrPortFrom(relayed.Addr().Unmap(), relayed.Port())}
	return rt
}

// checkChannelBind binds channel ch to peer and wants error code want, or
// success when want is 0.
func (r *rawTURN) checkChannelBind(t *testing.T, ctx context.Context, ch uint16, peer netip.AddrPort, want int) {
	t.Helper()
	_, err := r.c.Do(ctx, r.server, stun.MethodChannelBind, func(b []byte, id stun.TransactionID) []byte {
		b = turn.AppendChannelNumber(b, ch)
		return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
	})
	se, isSTUN := errors.AsType[*stun.Error](err)
	switch {
	case want == 0 && err != nil:
		t.Errorf("ChannelBind %#x to %v = %v, want success", ch, peer, err)
	case want != 0 && (!isSTUN || se.Code != want):
		t.Errorf("ChannelBind %#x to %v = %v, want error %d", ch, peer, err, want)
	}
}
