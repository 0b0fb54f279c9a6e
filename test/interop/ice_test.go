package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// The tests in this file connect our ICE agent (`icebreaker ice`, RFC 8445)
// with pion/ice v4 (cmd/pionice, which follows the same command-line
// contract): each side prints its ib1 token, the test hands it to the
// other, both connect, exchange pings both ways over the selected pair and
// print a JSON summary, which the test compares.

// icePings is the --count of every ICE run here.
const icePings = 3

// pionice is the cmd/pionice binary, built once next to the icebreaker
// binary (so TestMain removes it).
var (
	pioniceOnce sync.Once
	pioniceBin  string
	pioniceErr  error
)

func pioniceBinary(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	pioniceOnce.Do(func() {
		out := filepath.Join(filepath.Dir(binary), "pionice")
		b, err := exec.Command("go", "build", "-o", out, "./cmd/pionice").CombinedOutput()
		if err != nil {
			pioniceErr = fmt.Errorf("go build ./cmd/pionice: %v\n%s", err, b)
			return
		}
		pioniceBin = out
	})
	if pioniceErr != nil {
		t.Fatal(pioniceErr)
	}
	return pioniceBin
}

// iceProc is what the tests need of a started process: a
// *testutil.Process or a *natlab.Proc.
type iceProc interface {
	Output() string
	Wait() error
	Exited() bool
}

// iceSide is one running `icebreaker ice` or `pionice`.
type iceSide struct {
	name  string // for messages, e.g. "pionice answer"
	proc  iceProc
	stdin io.WriteCloser
}

// startLocalICE starts bin with args on this host; the test's cleanup
// kills it by process group.
func startLocalICE(t *testing.T, ctx context.Context, name, bin string, args ...string) *iceSide {
	t.Helper()
	cmd := testutil.Command(ctx, bin, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	return &iceSide{name: name, proc: testutil.Start(t, cmd), stdin: in}
}

// startLabICE starts bin with args on a host of the lab, which kills it in
// its cleanup.
func startLabICE(t *testing.T, ctx context.Context, lab *natlab.Lab, host, name, bin string, args ...string) *iceSide {
	t.Helper()
	p := lab.StartWithStdin(ctx, host, bin, args...)
	return &iceSide{name: host + ": " + name, proc: p, stdin: p.Stdin()}
}

// tokenLine matches a complete token line.
var tokenLine = regexp.MustCompile(`(?m)^(ib1:[A-Za-z0-9_-]+)\n`)

// summaryLine matches the --json summary line.
var summaryLine = regexp.MustCompile(`(?m)^(\{.*\})$`)

// token waits until s has printed its token and returns it.
func (s *iceSide) token(ctx context.Context) (string, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		exited := s.proc.Exited() // before reading the output, so none is missed
		if m := tokenLine.FindStringSubmatch(s.proc.Output()); m != nil {
			return m[1], nil
		}
		if exited {
			return "", fmt.Errorf("%s exited (%v) without a token:\n%s", s.name, s.proc.Wait(), s.proc.Output())
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the token of %s: %w\n%s", s.name, context.Cause(ctx), s.proc.Output())
		case <-tick.C:
		}
	}
}

// iceCand is a candidate in the summary.
type iceCand struct {
	Type string `json:"type"`
	Addr string `json:"addr"`
}

func (c iceCand) String() string { return c.Type + " " + c.Addr }

// iceResult is the --json summary that both programs print.
type iceResult struct {
	Role             string    `json:"role"`
	Local            iceCand   `json:"local"`
	Remote           iceCand   `json:"remote"`
	ConnectMS        float64   `json:"connect_ms"`
	Pings            int       `json:"pings"`
	Lost             int       `json:"lost"`
	RTTms            []float64 `json:"rtt_ms"`
	LocalCandidates  []string  `json:"local_candidates"`
	RemoteCandidates []string  `json:"remote_candidates"`
}

// summaryKeys are the keys of the contract's summary, all required.
var summaryKeys = []string{"role", "local", "remote", "connect_ms", "pings", "lost", "rtt_ms",
	"local_candidates", "remote_candidates"}

// optionalKeys may also appear: details that only one side reports (the
// pair moved to, servers that gave no candidate, how the local candidate
// was found, port mappings).
var optionalKeys = []string{"final", "gather_failures", "local_origin", "portmapped"}

// result waits for s to exit and returns its summary; it fails the test if
// s failed or printed a summary that breaks the contract.
func (s *iceSide) result(t *testing.T) iceResult {
	t.Helper()
	err := s.proc.Wait()
	out := s.proc.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", s.name, err, out)
	}
	m := summaryLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s printed no JSON summary:\n%s", s.name, out)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(m[1]), &keys); err != nil {
		t.Fatalf("%s: summary %s: %v", s.name, m[1], err)
	}
	var got []string
	for k := range keys {
		if !slices.Contains(optionalKeys, k) {
			got = append(got, k)
		}
	}
	want := slices.Clone(summaryKeys)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: summary keys %v, want %v", s.name, got, want)
	}
	var r iceResult
	if err := json.Unmarshal([]byte(m[1]), &r); err != nil {
		t.Fatalf("%s: summary %s: %v", s.name, m[1], err)
	}
	return r
}

// nat tells the address a NAT gave a LAN address: lan is the LAN prefix,
// public the NAT's address, and keepsPort whether the mapping keeps the
// port (an EIM masquerade without "random").
type nat struct {
	lan       netip.Prefix
	public    netip.Addr
	keepsPort bool
}

// seenAs reports whether local, the address one side sends from, is the
// address the peer calls remote: the same address, or local's mapping on a
// NAT in nats. The candidate types may differ (the peer may know a host or
// server-reflexive address as peer-reflexive), except that a relayed
// address is relayed on both sides. Behind a NAT that does not keep ports
// only the NAT's address is compared: there a host address maps to a new
// port for every destination, and so does the base of a server-reflexive
// one (pion/ice reports its srflx candidate as the local end of a pair even
// when the NAT mapped that socket to another port towards the peer).
func seenAs(local, remote iceCand, nats []nat) bool {
	if (local.Type == "relay") != (remote.Type == "relay") {
		return false
	}
	l, err1 := netip.ParseAddrPort(local.Addr)
	r, err2 := netip.ParseAddrPort(remote.Addr)
	if err1 != nil || err2 != nil {
		return false
	}
	if l == r {
		return true
	}
	for _, n := range nats {
		if local.Type != "relay" && (n.lan.Contains(l.Addr()) || l.Addr() == n.public) && r.Addr() == n.public {
			return !n.keepsPort || l.Port() == r.Port()
		}
	}
	return false
}

// checkPair checks the summaries of the controlling side (offer) and the
// controlled side (answer) of one connection.
func checkPair(t *testing.T, offer, answer *iceSide, o, a iceResult, nats []nat) {
	t.Helper()
	for _, c := range []struct {
		side *iceSide
		r    iceResult
		role string
	}{{offer, o, "offer"}, {answer, a, "answer"}} {
		r := c.r
		switch {
		case r.Role != c.role:
			t.Errorf("%s: role %q, want %q", c.side.name, r.Role, c.role)
		case r.Pings != icePings || r.Lost >= r.Pings || len(r.RTTms) != r.Pings-r.Lost:
			t.Errorf("%s: %d pings, %d lost, rtts %v: want %d pings, some answered",
				c.side.name, r.Pings, r.Lost, r.RTTms, icePings)
		case r.ConnectMS <= 0:
			t.Errorf("%s: connect_ms %v", c.side.name, r.ConnectMS)
		}
	}
	if !slices.Equal(o.LocalCandidates, a.RemoteCandidates) || !slices.Equal(a.LocalCandidates, o.RemoteCandidates) {
		t.Errorf("the candidates did not cross intact:\n%s: local %q remote %q\n%s: local %q remote %q",
			offer.name, o.LocalCandidates, o.RemoteCandidates, answer.name, a.LocalCandidates, a.RemoteCandidates)
	}
	if !seenAs(o.Local, a.Remote, nats) || !seenAs(a.Local, o.Remote, nats) {
		t.Errorf("the sides disagree on the selected pair:\n%s: local %v <-> remote %v\n%s: local %v <-> remote %v",
			offer.name, o.Local, o.Remote, answer.name, a.Local, a.Remote)
	}
}

// connect hands each side the other's token and returns both summaries.
func connect(t *testing.T, ctx context.Context, offer, answer *iceSide) (o, a iceResult) {
	t.Helper()
	for _, c := range []struct{ from, to *iceSide }{{offer, answer}, {answer, offer}} {
		tok, err := c.from.token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c.to.stdin, tok+"\n"); err != nil {
			t.Fatalf("giving the token of %s to %s: %v", c.from.name, c.to.name, err)
		}
		c.to.stdin.Close()
	}
	return offer.result(t), answer.result(t)
}

// TestICEPionLoopback connects `icebreaker ice` and pionice on 127.0.0.1,
// with us controlling (icebreaker offer, pionice answer) and controlled
// (pionice offer, icebreaker answer). Both print pings answered both ways
// and agree on the selected pair.
func TestICEPionLoopback(t *testing.T) {
	t.Parallel()
	pion := pioniceBinary(t)
	ours := []string{"--loopback", "--ip", "127.0.0.1", "--count", fmt.Sprint(icePings), "--timeout", "15s", "--json"}
	theirs := []string{"--ip", "127.0.0.1", "--count", fmt.Sprint(icePings), "--timeout", "15s", "--json"}
	for _, usControlling := range []bool{true, false} {
		name := "us controlling"
		if !usControlling {
			name = "us controlled"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			var offer, answer *iceSide
			if usControlling {
				offer = startLocalICE(t, ctx, "icebreaker offer", binary, append([]string{"ice", "offer"}, ours...)...)
				answer = startLocalICE(t, ctx, "pionice answer", pion, append([]string{"answer"}, theirs...)...)
			} else {
				offer = startLocalICE(t, ctx, "pionice offer", pion, append([]string{"offer"}, theirs...)...)
				answer = startLocalICE(t, ctx, "icebreaker answer", binary, append([]string{"ice", "answer"}, ours...)...)
			}
			o, a := connect(t, ctx, offer, answer)
			checkPair(t, offer, answer, o, a, nil)
			for _, c := range []iceCand{o.Local, o.Remote, a.Local, a.Remote} {
				if ap, err := netip.ParseAddrPort(c.Addr); err != nil || !ap.Addr().IsLoopback() {
					t.Errorf("selected pair has %v, want loopback addresses", c)
				}
			}
			t.Logf("%s: connect_ms %.1f, %v <-> %v; %s: connect_ms %.1f, %v <-> %v",
				offer.name, o.ConnectMS, o.Local, o.Remote, answer.name, a.ConnectMS, a.Local, a.Remote)
		})
	}
}

// TestICEPionNATLab connects `icebreaker ice` in lanA and pionice in lanB
// through the NAT lab, with `icebreaker serve` in wan as STUN and TURN
// server. Behind two EIM NATs both roles must find a direct pair (srflx or
// prflx across the NATs). Behind two symmetric NATs (random) no direct pair
// exists; with --turn on both sides the selected pair is relayed.
func TestICEPionNATLab(t *testing.T) {
	t.Parallel()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	pion := pioniceBinary(t)
	server := natlab.ServerIP1 + ":3478"
	for _, tc := range []struct {
		name          string
		mode          natlab.Mode
		usControlling bool
		relay         bool
	}{
		{"eim us controlling", natlab.EIM, true, false},
		{"eim us controlled", natlab.EIM, false, false},
		{"random relay us controlling", natlab.Random, true, true},
		{"random relay us controlled", natlab.Random, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := natlab.New(t, natlab.Options{A: tc.mode, B: tc.mode})
			ctx := testContext(t)
			srv := lab.Start(ctx, "wan", binary, "serve", "--listen", natlab.ServerIP1, "--port", "3478", "--rendezvous", "off",
				"--user-db", "none", "--user", turnUser+":"+turnPass, "--allow-peer", "203.0.113.0/24")
			if err := srv.WaitForOutput(ctx, server); err != nil {
				t.Fatal(err)
			}
			common := []string{"--stun", server, "--count", fmt.Sprint(icePings), "--timeout", "15s", "--json"}
			if tc.relay {
				common = append(common, "--turn", "turn:"+server, "--turn-user", turnUser, "--turn-pass", turnPass)
			}
			ours := append([]string{"--ip", natlab.LanAIP}, common...)
			theirs := append([]string{"--ip", natlab.LanBIP}, common...)
			var offer, answer *iceSide
			if tc.usControlling {
				offer = startLabICE(t, ctx, lab, "lanA", "icebreaker offer", binary, append([]string{"ice", "offer"}, ours...)...)
				answer = startLabICE(t, ctx, lab, "lanB", "pionice answer", pion, append([]string{"answer"}, theirs...)...)
			} else {
				offer = startLabICE(t, ctx, lab, "lanB", "pionice offer", pion, append([]string{"offer"}, theirs...)...)
				answer = startLabICE(t, ctx, lab, "lanA", "icebreaker answer", binary, append([]string{"ice", "answer"}, ours...)...)
			}
			o, a := connect(t, ctx, offer, answer)
			keeps := tc.mode == natlab.EIM
			nats := []nat{
				{netip.MustParsePrefix(natlab.LanAIP + "/24"), netip.MustParseAddr(natlab.NatAPublic), keeps},
				{netip.MustParsePrefix(natlab.LanBIP + "/24"), netip.MustParseAddr(natlab.NatBPublic), keeps},
			}
			checkPair(t, offer, answer, o, a, nats)
			for _, c := range []struct {
				side *iceSide
				r    iceResult
			}{{offer, o}, {answer, a}} {
				relayed := c.r.Local.Type == "relay" || c.r.Remote.Type == "relay"
				switch {
				case tc.relay && !relayed:
					t.Errorf("%s: selected %v <-> %v, want a relayed pair", c.side.name, c.r.Local, c.r.Remote)
				case !tc.relay && (relayed || (c.r.Remote.Type != "srflx" && c.r.Remote.Type != "prflx")):
					t.Errorf("%s: selected %v <-> %v, want a direct pair to a srflx or prflx address",
						c.side.name, c.r.Local, c.r.Remote)
				}
			}
			if srv.Exited() {
				t.Errorf("icebreaker serve exited:\n%s", srv.Output())
			}
			t.Logf("%s: connect_ms %.1f, %v <-> %v; %s: connect_ms %.1f, %v <-> %v",
				offer.name, o.ConnectMS, o.Local, o.Remote, answer.name, a.ConnectMS, a.Local, a.Remote)
		})
	}
}
