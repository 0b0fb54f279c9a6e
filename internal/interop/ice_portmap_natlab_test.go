//go:build linux

package interop

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
)

// TestICEPortMapThroughNATs reruns side A's rows of the ICE matrix (see
// ice_natlab_test.go) with miniupnpd on natA, which `icebreaker ice` asks
// for a port mapping by default. The mapping lets anyone in on its port,
// so every row now ends like the fullcone row: on a direct pair in every
// column. (The first pair selected may still be the relay when the direct
// checks are slower than the agent's relay wait, as on a loaded machine;
// the agent then moves to the direct pair, and the test logs it.) Where the matrix without the daemon
// ends on the relay, the direct path exists only through the mapping, so
// the peer's end of the pair must be the mapping's address (lanA's --json
// lists it under "portmapped"). The other cells, the oneway ones included
// (their direct path without the mapping works when the first check is
// not dropped), may use any candidate of lanA.
func TestICEPortMapThroughNATs(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	rows := []natlab.Mode{natlab.EIM, natlab.AddrRestricted, natlab.Random, natlab.FullyRandom}
	for _, a := range rows {
		for _, b := range iceMatrixModes {
			before := expectedOutcome(t, a, b)
			t.Run(fmt.Sprintf("%s×%s", a, b), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				l := newICELabOpts(t, ctx, bin, natlab.Options{A: a, B: b, PortMapA: natlab.PortMapOptions{Enable: true}})
				l.lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
				l.extra = slowDaemon
				offer, answer := l.connect(t, ctx, true, nil)
				mapped := portMapped(t, l.out["lanA"])
				viaMapping := len(mapped) > 0 && slices.ContainsFunc([]string{answer.Final.Remote.Addr, answer.First().Remote.Addr}, func(s string) bool { return slices.Contains(mapped, s) })
				origin := localOrigin(t, l.out["lanA"])
				t.Logf("%s×%s with port mapping (before: %s): %s in %.1f ms (offer) / %.1f ms (answer): offer %v (local origin %s); answer %v; mapped %v, through it: %v",
					a, b, before, offer.Final.outcome(), offer.ConnectMS, answer.ConnectMS, offer.Final, origin, answer.Final, mapped, viaMapping)
				if len(mapped) != 1 {
					t.Fatalf("lanA offered %d port-mapped candidates %v, want 1", len(mapped), mapped)
				}
				if a, err := netip.ParseAddrPort(mapped[0]); err != nil || a.Addr() != netip.MustParseAddr(natlab.NatAPortMapIP) {
					t.Errorf("mapped candidate %s, want one on %s", mapped[0], natlab.NatAPortMapIP)
				}
				checkAgree(t, offer, answer, false)
				for _, r := range []iceResult{offer, answer} {
					if r.Final.outcome() != outDirect {
						t.Errorf("%s: first %v, final %v; want a direct final pair", r.Role, r.First(), r.Final)
					} else if r.First().outcome() != outDirect {
						t.Logf("%s: on the relay first (%v), then direct", r.Role, r.First())
					}
				}
				if before == outRelay && !viaMapping {
					t.Errorf("the direct pair %v does not use lanA's mapped candidate %v", answer.Final, mapped)
				}
				if before == outRelay && offer.First().Local.Addr == mapped[0] && origin != "portmap" {
					t.Errorf("lanA's local candidate %v on the pair has origin %q, want portmap", offer.First().Local, origin)
				}
			})
		}
	}
}

// TestICEPortMapDoubleNAT: when natA's daemon reports an external address
// that is not the one STUN servers see (natA behind another NAT), lanA
// does not offer the mapped candidate, and random×random ends on the
// relay as without the daemon.
func TestICEPortMapDoubleNAT(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	l := newICELabOpts(t, ctx, bin, natlab.Options{A: natlab.Random, B: natlab.Random, PortMapA: natlab.PortMapOptions{Enable: true, DoubleNAT: true}})
	l.lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
	l.extra = slowDaemon
	offer, answer := l.connect(t, ctx, true, nil)
	if mapped := portMapped(t, l.out["lanA"]); len(mapped) != 0 {
		t.Errorf("lanA offered port-mapped candidates %v behind a double NAT", mapped)
	}
	checkAgree(t, offer, answer, false)
	checkOutcome(t, outRelay, offer, answer)
}

// TestICENoPortMapFlag: with --no-portmap lanA asks nothing, so the
// daemon holds no mapping and random×random stays on the relay.
func TestICENoPortMapFlag(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	l := newICELabOpts(t, ctx, bin, natlab.Options{A: natlab.Random, B: natlab.Random, PortMapA: natlab.PortMapOptions{Enable: true}})
	d := l.lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
	l.extra = []string{"--no-portmap"}
	offer, answer := l.connect(t, ctx, true, nil)
	if mapped := portMapped(t, l.out["lanA"]); len(mapped) != 0 {
		t.Errorf("lanA offered port-mapped candidates %v with --no-portmap", mapped)
	}
	checkOutcome(t, outRelay, offer, answer)
	if out := d.Output(); strings.Contains(out, natlab.LanAIP) {
		t.Errorf("the daemon saw requests although --no-portmap was given:\n%s", out)
	}
}

// localOrigin returns the origin of the local candidate of the pair in a
// --json summary.
func localOrigin(t *testing.T, out string) string {
	t.Helper()
	m := summaryLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no JSON summary in\n%s", out)
	}
	var s struct {
		LocalOrigin string `json:"local_origin"`
	}
	if err := json.Unmarshal([]byte(m[1]), &s); err != nil {
		t.Fatal(err)
	}
	return s.LocalOrigin
}

// slowDaemon gives miniupnpd more than the default 400 ms to answer:
// each mapping is an nftables transaction, which waits behind the
// namespaces and rulesets that parallel tests create (2 s and more have
// been seen under the full suite). Its speed is the bench's business.
var slowDaemon = []string{"--portmap-timeout", "3s"}

// portMapped returns the "portmapped" list of a --json summary.
func portMapped(t *testing.T, out string) []string {
	t.Helper()
	m := summaryLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no JSON summary in\n%s", out)
	}
	var s struct {
		PortMapped []string `json:"portmapped"`
	}
	if err := json.Unmarshal([]byte(m[1]), &s); err != nil {
		t.Fatal(err)
	}
	return s.PortMapped
}

// TestICEPortMapInterrupt: `icebreaker ice offer` in lanA holds its
// mapping on natA's miniupnpd while it waits for the peer's token, and
// deletes it when interrupted (Ctrl-C, SIGINT).
func TestICEPortMapInterrupt(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	lab := natlab.New(t, natlab.Options{A: natlab.Random, B: natlab.EIM, PortMapA: natlab.PortMapOptions{Enable: true}})
	lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
	p := lab.StartWithStdin(ctx, "lanA", bin, append([]string{"ice", "offer"}, slowDaemon...)...)
	if err := p.WaitForOutput(ctx, "(port mapping)"); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	m := regexp.MustCompile(`srflx ` + regexp.QuoteMeta(natlab.NatAPortMapIP) + `:(\d+) \(port mapping\)`).FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no mapped candidate in\n%s", p.Output())
	}
	port, _ := strconv.Atoi(m[1])
	held := func() bool {
		rules, err := lab.MiniUPnPdRules(ctx)
		if err != nil {
			t.Fatalf("%v\n%s", err, rules)
		}
		return strings.Contains(rules, fmt.Sprintf(" th dport %d ", port))
	}
	if !held() {
		t.Fatalf("mapping of port %d not in the daemon's rules", port)
	}
	if err := syscall.Kill(p.PID(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait() // exits non-zero: interrupted
	if held() {
		rules, _ := lab.MiniUPnPdRules(ctx)
		t.Fatalf("mapping of port %d still in the daemon's rules after SIGINT:\n%s\n%s", port, rules, p.Output())
	}
}
