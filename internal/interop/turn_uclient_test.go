package interop

import (
	"errors"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// uclient's load: -m clients each send -n messages of -l bytes, one every
// -z milliseconds. Moderate on purpose: the test is about interop, not
// throughput, and no packet may be lost at this rate.
const (
	uclientMsgs     = 50
	uclientClients  = 2
	uclientLength   = 120
	uclientInterval = 5
)

// What turnutils_uclient prints at the end (it exits 0 even with loss):
//
//	start_mclient: tot_send_msgs=100, tot_recv_msgs=100
//	Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)
var (
	uclientTotals = regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
	uclientLost   = regexp.MustCompile(`Total lost packets (\d+) \(`)
)

// uclientResult is what a uclient run reported.
type uclientResult struct {
	sent, recv, lost int
}

// parseUclient reads the totals from uclient's output.
func parseUclient(out []byte) (uclientResult, error) {
	t := uclientTotals.FindAllSubmatch(out, -1)
	l := uclientLost.FindSubmatch(out)
	if len(t) == 0 || l == nil {
		return uclientResult{}, errors.New("no totals in the output")
	}
	last := t[len(t)-1]
	var r uclientResult
	r.sent, _ = strconv.Atoi(string(last[1]))
	r.recv, _ = strconv.Atoi(string(last[2]))
	r.lost, _ = strconv.Atoi(string(l[1]))
	return r, nil
}

// TestUclientAgainstServe runs coturn's turnutils_uclient, the TURN load
// and interop client, against `icebreaker serve` in each of its modes, with
// turnutils_peer as the UDP echo peer, and requires that every message
// comes back. Each case has its own server, which allows loopback peers
// (--allow-peer 127.0.0.0/8 and ::1/128; the built-in policy denies them)
// and channel numbers up to 0x7FFF (--loose-channels), since uclient picks
// them from 0x4000-0x7FFF. uclient fails now and then by itself (exit
// status 255 without totals); a case gets one retry for that, which the
// log reports. Loss is never retried.
func TestUclientAgainstServe(t *testing.T) {
	t.Parallel()
	uclient := testutil.RequireBinary(t, "turnutils_uclient")
	testutil.RequireBinary(t, "turnutils_peer")
	icebreaker(t) // build before the cases start their clocks

	for _, tc := range []struct {
		name string
		tcp  bool       // to the server over TCP
		ip   netip.Addr // server, peer and relay address family
		peer bool       // needs turnutils_peer (not in client-to-client modes)
		args []string
	}{
		{"udp", false, loopback4, true, nil},
		{"tcp", true, loopback4, true, []string{"-t"}},
		{"udp send indications", false, loopback4, true, []string{"-s"}},
		{"tcp send indications", true, loopback4, true, []string{"-t", "-s"}},
		{"client to client", false, loopback4, false, []string{"-y"}},
		{"rest secret", false, loopback4, true, []string{"-W", turnRESTSecret}},
		// RFC 6062: -T implies -t -y -c. turnserver implements Connect,
		// ConnectionBind and ConnectionAttempt.
		{"tcp relay rfc6062", true, loopback4, false, []string{"-T"}},
		{"ipv6 udp", false, loopback6, true, []string{"-x"}},
		{"ipv6 tcp", true, loopback6, true, []string{"-x", "-t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.ip.Is6() {
				requireLoopback6(t)
			}
			ctx := testContext(t)
			srv := startTURNServe(t, ctx, []string{tc.ip.String()},
				"--allow-peer", "127.0.0.0/8", "--allow-peer", "::1/128", "--loose-channels")
			peer := netip.AddrPortFrom(tc.ip, 9) // unused in client-to-client modes
			if tc.peer {
				peer = startEchoPeer(t, ctx, tc.ip)
			}
			network := "udp"
			if tc.tcp {
				network = "tcp"
			}
			server := srv.addr(t, network, tc.ip)

			args := []string{
				"-u", turnUser,
				"-e", peer.Addr().String(), "-r", strconv.Itoa(int(peer.Port())),
				"-c", // one peer port, not also port+1
				"-n", strconv.Itoa(uclientMsgs), "-m", strconv.Itoa(uclientClients),
				"-l", strconv.Itoa(uclientLength), "-z", strconv.Itoa(uclientInterval),
				"-p", strconv.Itoa(int(server.Port())),
			}
			if !slices.Contains(tc.args, "-W") {
				args = append(args, "-w", turnPass)
			}
			args = append(append(args, tc.args...), server.Addr().String())

			var res uclientResult
			var out []byte
			for attempt := 1; ; attempt++ {
				var err error
				out, err = testutil.Command(ctx, uclient, args...).CombinedOutput()
				var perr error
				res, perr = parseUclient(out)
				if err == nil && perr == nil {
					if attempt > 1 {
						t.Logf("flaky: turnutils_uclient passed on attempt %d", attempt)
					}
					break
				}
				if ctx.Err() != nil || attempt == 2 {
					t.Fatalf("turnutils_uclient %v (attempt %d): %v, %v\n%s\nserver:\n%s",
						args, attempt, err, perr, out, srv.proc.Output())
				}
				var ee *exec.ExitError
				if !errors.As(err, &ee) && err != nil {
					t.Fatalf("turnutils_uclient: %v", err)
				}
				t.Logf("flaky: turnutils_uclient failed (%v, %v); retrying once. Its output:\n%s", err, perr, out)
			}

			want := uclientMsgs * uclientClients
			if res.sent != want || res.recv != res.sent || res.lost != 0 {
				t.Errorf("turnutils_uclient sent %d, received %d, lost %d; want %d sent, all received, none lost\n%s",
					res.sent, res.recv, res.lost, want, out)
			}
			srv.checkAlive(t)
			t.Logf("%s: sent %d, received %d, lost %d", tc.name, res.sent, res.recv, res.lost)
		})
	}
}
