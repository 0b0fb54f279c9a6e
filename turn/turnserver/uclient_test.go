package turnserver

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
)

// TestUClient runs coturn's turnutils_uclient against the server (built
// in process on free loopback ports) with turnutils_peer as the echo
// peer, and requires that no packet is lost. The policy allows loopback
// for this test only.
func TestUClient(t *testing.T) {
	uclient := testutil.RequireBinary(t, "turnutils_uclient")
	peerBin := testutil.RequireBinary(t, "turnutils_peer")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"udp channels", nil},
		{"udp send indications", []string{"-s"}},
		{"tcp channels", []string{"-t"}},
		{"tcp send indications", []string{"-t", "-s"}},
		{"client to client", []string{"-y"}},
		{"tcp relay (RFC 6062)", []string{"-T"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.LooseChannels = true
				c.Clock = nil
				c.Policy = mustPolicy(policyAllowLoopback())
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			peerPort := freeUDPPortPair(t)
			testutil.Start(t, testutil.Command(ctx, peerBin, "-L", "127.0.0.1", "-p", strconv.Itoa(int(peerPort))))
			args := append([]string{"-u", "alice", "-w", users["alice"], "-e", "127.0.0.1", "-r", strconv.Itoa(int(peerPort)),
				"-n", "30", "-m", "2", "-l", "100", "-z", "5", "-c", "-p", strconv.Itoa(int(e.udp.Port()))}, tc.args...)
			if slicesContain(tc.args, "-t") || slicesContain(tc.args, "-T") {
				args[len(args)-len(tc.args)-1] = strconv.Itoa(int(e.tcp.Port()))
			}
			args = append(args, "127.0.0.1")
			out, err := testutil.Command(ctx, uclient, args...).CombinedOutput()
			if err != nil && ctx.Err() != nil {
				t.Fatalf("turnutils_uclient: %v\n%s", err, out)
			}
			lost := regexp.MustCompile(`Total lost packets (\d+) \(`).FindSubmatch(out)
			sent := regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`).FindSubmatch(out)
			if lost == nil || sent == nil {
				t.Fatalf("no totals in the output:\n%s", out)
			}
			if string(lost[1]) != "0" || string(sent[1]) != "60" || string(sent[2]) != "60" {
				t.Errorf("lost %s; sent %s, received %s, want 60 and 60:\n%s", lost[1], sent[1], sent[2], out)
			}
			st := e.turn.Stats()
			t.Logf("server stats %+v", st)
			if st.ToPeerBytes == 0 || st.ToClientBytes == 0 {
				t.Errorf("nothing relayed: %+v", st)
			}
		})
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// freeUDPPortPair returns a port p, free on 127.0.0.1 for UDP, with p+1
// free too (turnutils_peer listens on both when asked).
func freeUDPPortPair(t testing.TB) uint16 {
	t.Helper()
	for range 50 {
		p := freeUDPPort(t)
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loop4, p+1)))
		if err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

var _ stunserver.Handler = (*Server)(nil)
