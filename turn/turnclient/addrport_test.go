package turnclient

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestRelayAddrPort: ReadFromUDPAddrPort and WriteToUDPAddrPort carry
// datagrams both ways through our server, in Send/Data indications and
// then over a channel, with the peer's address unmapped, and allocate
// nothing per datagram once the peer has its permission (the in-process
// server's work counted too).
func TestRelayAddrPort(t *testing.T) {
	checkNoLeak(t)
	s := startOurs(t, ourOpts{})
	for _, tc := range []struct {
		name      string
		bindAfter int
		channel   bool
	}{{"indications", 1 << 20, false}, {"channel", 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Allocate(t.Context(), Config{Server: s.udp.String(), Username: "u", Password: "p", BindAfter: tc.bindAfter})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			mapped := netip.AddrPortFrom(netip.AddrFrom16(peerAddr.Addr().As16()), peerAddr.Port())
			msg, buf := []byte("through the relay"), make([]byte, 1500)
			deadline := time.Now().Add(10 * time.Second)
			peer.SetDeadline(deadline)
			r.SetDeadline(deadline)
			round := func() {
				if _, err := r.WriteToUDPAddrPort(msg, mapped); err != nil {
					t.Fatal(err)
				}
				n, from, err := peer.ReadFromUDPAddrPort(buf)
				if err != nil || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("peer read %q, %v", buf[:n], err)
				}
				if _, err := peer.WriteToUDPAddrPort(msg, from); err != nil {
					t.Fatal(err)
				}
				n, from, err = r.ReadFromUDPAddrPort(buf)
				if err != nil || !bytes.Equal(buf[:n], msg) || from != peerAddr {
					t.Fatalf("relay read %q from %v, %v; want %q from %v", buf[:n], from, err, msg, peerAddr)
				}
			}
			round()
			for tc.channel && r.Channel(peerAddr) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no channel was bound")
				}
				round()
			}
			before := r.Stats()
			if testutil.RaceEnabled {
				round()
			} else if n := testing.AllocsPerRun(200, round); n != 0 {
				t.Errorf("%v allocations per round trip, want 0", n)
			}
			after := r.Stats()
			if tc.channel && after.SentChannelData == before.SentChannelData ||
				!tc.channel && after.SentIndications == before.SentIndications {
				t.Fatalf("stats %+v -> %+v: not the path under test", before, after)
			}
			var op *net.OpError
			if _, err := r.WriteToUDPAddrPort(msg, netip.AddrPort{}); !errors.As(err, &op) {
				t.Fatalf("write to no address: %v, want a *net.OpError", err)
			}
		})
	}
}
