package interop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// channelConn is what pion's relayed connection offers beyond
// net.PacketConn: the channel it bound for a peer, and whether WriteTo
// already sends ChannelData on it.
type channelConn interface {
	FindChannelNumberByAddr(addr net.Addr) (uint16, bool)
	IsChannelActive(ch uint16) bool
}

// TestPionTURNClient runs pion/turn v5's client against `icebreaker serve`
// over UDP and TCP, with long-term and TURN REST credentials: Allocate,
// CreatePermission, then datagrams to a UDP echo peer on 127.0.0.1 through
// the relay. pion sends the first datagrams in Send indications and binds
// a channel in the background on the first WriteTo; the round trips go on
// until the channel is active and a few more have gone as ChannelData.
// The server allows loopback peers in this test only; it keeps RFC 8656's
// channel range (pion picks channels from 0x4000 on).
func TestPionTURNClient(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServe(t, ctx, "--allow-peer", "127.0.0.0/8")

	restUser, restPass, err := turn.GenerateLongTermTURNRESTCredentials(restSecret, "pion", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		tcp        bool
		user, pass string
	}{
		{"udp", false, turnUser, turnPass},
		{"tcp", true, turnUser, turnPass},
		{"udp rest", false, restUser, restPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			peer := startEchoPeer(t)
			server := srv.udp
			var conn net.PacketConn
			if tc.tcp {
				server = srv.tcp
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp4", server.String())
				if err != nil {
					t.Fatal(err)
				}
				conn = turn.NewSTUNConn(c)
			} else {
				c, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				conn = c
			}
			defer conn.Close()

			client, err := turn.NewClient(&turn.ClientConfig{
				STUNServerAddr: server.String(),
				TURNServerAddr: server.String(),
				Conn:           conn,
				Username:       tc.user,
				Password:       tc.pass,
				RTO:            200 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if err := client.Listen(); err != nil {
				t.Fatal(err)
			}

			// STUN Binding through pion's TURN client, on the same socket.
			mapped, err := client.SendBindingRequest()
			if err != nil {
				t.Fatalf("Binding: %v", err)
			}
			if !tc.tcp && mapped.String() != conn.LocalAddr().String() {
				t.Errorf("Binding: mapped %v, want the socket's address %v", mapped, conn.LocalAddr())
			}

			relay, err := client.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v\nserver:\n%s", err, srv.proc.Output())
			}
			defer relay.Close()
			relayed, err := netip.ParseAddrPort(relay.LocalAddr().String())
			if err != nil || relayed.Addr() != netip.MustParseAddr("127.0.0.1") || relayed.Port() == 0 {
				t.Fatalf("relayed address %v (%v), want one on 127.0.0.1", relay.LocalAddr(), err)
			}
			if client.Realm().String() != turnRealm {
				t.Errorf("realm %q, want %q", client.Realm(), turnRealm)
			}

			peerAddr := net.UDPAddrFromAddrPort(peer.addr())
			if err := client.CreatePermission(peerAddr); err != nil {
				t.Fatalf("CreatePermission(%v): %v", peerAddr, err)
			}
			// Only loopback is allowed: a private address stays denied.
			if err := client.CreatePermission(&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}); err == nil {
				t.Error("CreatePermission(10.0.0.1) succeeded, want 403")
			} else {
				t.Logf("CreatePermission(10.0.0.1): %v", err)
			}

			cc, ok := relay.(channelConn)
			if !ok {
				t.Fatalf("pion's relayed conn %T no longer exposes its channels", relay)
			}
			indications, channelData := roundTrips(t, relay, peerAddr, cc)
			ch, _ := cc.FindChannelNumberByAddr(peerAddr)
			t.Logf("%d round trips in Send/Data indications, then %d as ChannelData on channel %#x",
				indications, channelData, ch)
			if ch < 0x4000 || ch > 0x4fff {
				t.Errorf("channel %#x outside RFC 8656's 0x4000-0x4FFF", ch)
			}

			// Everything reached the peer from the relayed address.
			senders := peer.from()
			if len(senders) != 1 || senders[relayed] == 0 {
				t.Errorf("echo peer heard from %v, want only the relayed address %v", senders, relayed)
			}
			srv.checkAlive(t)
		})
	}
}

// roundTrips sends numbered datagrams to peer through relay and reads
// their echoes, resending one that does not come back within a second,
// until the channel for peer is active and three round trips have gone
// over it (at most 100 round trips). It returns how many round trips
// went before the channel was active and after.
func roundTrips(t *testing.T, relay net.PacketConn, peer *net.UDPAddr, cc channelConn) (before, after int) {
	t.Helper()
	buf := make([]byte, 1500)
	for i := 0; i < 100 && after < 3; i++ {
		ch, bound := cc.FindChannelNumberByAddr(peer)
		active := bound && cc.IsChannelActive(ch)
		msg := fmt.Appendf(nil, "pion round trip %d", i)
		var resent int
		for {
			if _, err := relay.WriteTo(msg, peer); err != nil {
				t.Fatalf("WriteTo(%v): %v", peer, err)
			}
			if echoed(t, relay, buf, msg) {
				break
			}
			if resent++; resent == 3 {
				t.Fatalf("no echo of %q after %d sends", msg, resent)
			}
		}
		if active {
			after++
		} else {
			before++
		}
	}
	if after < 3 {
		t.Fatalf("channel never became active: %d round trips in indications", before)
	}
	return before, after
}

// echoed reads from relay until msg comes back (true) or a second passes
// (false). Other datagrams (late echoes of resent ones) are skipped.
func echoed(t *testing.T, relay net.PacketConn, buf, msg []byte) bool {
	t.Helper()
	relay.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, _, err := relay.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
				return false
			}
			t.Fatalf("ReadFrom: %v", err)
		}
		if string(buf[:n]) == string(msg) {
			return true
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestPionSTUNBinding sends pion/stun v4 Binding requests to `icebreaker
// serve` over UDP and TCP and checks XOR-MAPPED-ADDRESS: on loopback it is
// the client socket's own address.
func TestPionSTUNBinding(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServe(t, ctx)
	for _, tc := range []struct {
		network string
		addr    netip.AddrPort
	}{
		{"udp4", srv.udp},
		{"tcp4", srv.tcp},
	} {
		t.Run(tc.network, func(t *testing.T) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, tc.network, tc.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			local := conn.LocalAddr().String()
			c, err := stun.NewClient(conn) // owns conn
			if err != nil {
				conn.Close()
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 3 {
				var got stun.XORMappedAddress
				var herr error
				err := c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint), func(ev stun.Event) {
					if ev.Error != nil {
						herr = ev.Error
						return
					}
					if ev.Message.Type != stun.BindingSuccess {
						herr = fmt.Errorf("response type %v", ev.Message.Type)
						return
					}
					if err := stun.Fingerprint.Check(ev.Message); err != nil {
						herr = fmt.Errorf("FINGERPRINT: %w", err)
						return
					}
					herr = got.GetFrom(ev.Message)
				})
				if err == nil {
					err = herr
				}
				if err != nil {
					t.Fatalf("Binding %d: %v", i, err)
				}
				if got.String() != local {
					t.Errorf("Binding %d: XOR-MAPPED-ADDRESS %v, want the socket's address %v", i, &got, local)
				}
			}
			srv.checkAlive(t)
		})
	}
}
