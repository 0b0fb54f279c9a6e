package main

import (
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestServeOwnAddresses: with --external-ip PUBLIC/PRIVATE, PUBLIC on a
// listener port is the server's own address (it reaches the listener
// through the 1:1 NAT), so CreatePermission, ChannelBind and Connect to it
// get 403 even when the allow list covers it; PUBLIC on a relay port is
// not own (clients of the server relay to each other). The metrics
// endpoint is a listener too: a Connect to it gets 403 even with loopback
// allowed. The public address is a documentation address: nothing is sent
// to it (permissions and refused Connects send nothing).
func TestServeOwnAddresses(t *testing.T) {
	public := netip.MustParseAddr("198.51.100.7")
	r, metricsAddr := startServeMetrics(t, "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret",
		"--external-ip", public.String()+"/127.0.0.1", "--allow-peer", "127.0.0.0/8", "--allow-peer", public.String())
	udp, tcp := r.endpoint(t, "udp"), r.endpoint(t, "tcp")
	c := dialTURN(t, udp, "alice", "secret")
	relayed := c.allocate()
	if relayed.Addr() != public {
		t.Fatalf("relayed address %v, want one on %v", relayed, public)
	}
	for _, own := range []netip.AddrPort{
		netip.AddrPortFrom(public, udp.Port()), netip.AddrPortFrom(public, tcp.Port()),
		netip.AddrPortFrom(public, metricsAddr.Port()), metricsAddr,
	} {
		if code := c.createPermission(own); code != stun.CodeForbidden {
			t.Errorf("CreatePermission to %v: %d, want 403", own, code)
		}
		m := c.do(stun.MethodChannelBind, func(b []byte, id stun.TransactionID) []byte {
			b = turn.AppendChannelNumber(b, 0x4000)
			return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, own, id)
		})
		if code := errorCode(t, m); code != stun.CodeForbidden {
			t.Errorf("ChannelBind to %v: %d, want 403", own, code)
		}
	}
	// Relay ports on the public address stay reachable: another client's
	// relayed address.
	other := dialTURN(t, udp, "alice", "secret").allocate()
	if code := c.createPermission(other); code != 0 {
		t.Errorf("CreatePermission to the relayed address %v: %d, want success", other, code)
	}

	// RFC 6062: a Connect to the metrics endpoint is refused, not tried.
	tc := dialTURNOver(t, "tcp", tcp, "alice", "secret")
	tc.challenge()
	m := tc.do(stun.MethodAllocate, func(b []byte, _ stun.TransactionID) []byte {
		return turn.AppendRequestedTransport(b, turn.ProtoTCP)
	})
	if code := errorCode(t, m); code != 0 {
		t.Fatalf("TCP Allocate: %d", code)
	}
	for _, own := range []netip.AddrPort{metricsAddr, netip.AddrPortFrom(public, metricsAddr.Port())} {
		m = tc.do(stun.MethodConnect, func(b []byte, id stun.TransactionID) []byte {
			return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, own, id)
		})
		if code := errorCode(t, m); code != stun.CodeForbidden {
			t.Errorf("Connect to %v: %d, want 403", own, code)
		}
	}
	r.stop(t)
}
