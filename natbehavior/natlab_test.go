package natbehavior_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	nb "github.com/icebreaker-net/icebreaker/natbehavior"
)

// These tests run `icebreaker nat` inside lanA of a natlab (real kernel
// NATs built with network namespaces and nftables) against `icebreaker
// serve` in wan, and cross-check against coturn both ways: coturn's
// turnutils_natdiscovery against our server, and our client against
// coturn's turnserver. They need root; they skip without it, unless
// CI=true.

const icebreakerPkg = "github.com/icebreaker-net/icebreaker/cmd/icebreaker"

// Ports in wan: our server on 3478 (alternate port 3479), coturn on 3490
// (it takes 3491 as its alternate port).
const (
	ourPort    = 3478
	coturnPort = 3490
)

var labModes = []struct {
	mode      natlab.Mode
	nat       bool
	mapping   nb.Behavior
	filtering nb.Behavior
	oldName   string
}{
	{natlab.EIM, true, nb.EndpointIndependent, nb.AddressAndPortDependent, "port-restricted cone"},
	{natlab.AddrRestricted, true, nb.EndpointIndependent, nb.AddressDependent, "restricted cone"},
	{natlab.FullCone, true, nb.EndpointIndependent, nb.EndpointIndependent, "full cone"},
	{natlab.Random, true, nb.AddressAndPortDependent, nb.AddressAndPortDependent, "symmetric"},
	{natlab.FullyRandom, true, nb.AddressAndPortDependent, nb.AddressAndPortDependent, "symmetric"},
	{natlab.None, false, nb.EndpointIndependent, nb.EndpointIndependent, "open internet"},
}

// coturnTools returns the paths of coturn's turnserver and
// turnutils_natdiscovery, or why they cannot be used. Missing tools fail
// the test when CI=true.
func coturnTools(t *testing.T) (turnserver, natdiscovery, missing string) {
	t.Helper()
	var err1, err2 error
	turnserver, err1 = exec.LookPath("turnserver")
	natdiscovery, err2 = exec.LookPath("turnutils_natdiscovery")
	if err1 == nil && err2 == nil {
		return turnserver, natdiscovery, ""
	}
	missing = "coturn is not installed (apt-get install coturn)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v %v", missing, err1, err2)
	}
	return "", "", missing
}

// TestMain removes the binaries natlab.BuildBinary made.
func TestMain(m *testing.M) {
	code := m.Run()
	natlab.Cleanup()
	os.Exit(code)
}

func TestNATLab(t *testing.T) {
	for _, c := range labModes {
		t.Run(c.mode.String(), func(t *testing.T) {
			t.Parallel()
			lab := natlab.New(t, natlab.Options{A: c.mode, B: natlab.None})
			bin := natlab.BuildBinary(t, icebreakerPkg)
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			startOurServer(ctx, t, lab, bin)
			turnserver, natdiscovery, missing := coturnTools(t)
			if missing == "" {
				startCoturn(ctx, t, lab, bin, turnserver)
			}

			// The runs use fresh ports in lanA each, so they do not disturb
			// each other's NAT state: run them together.
			var (
				wg                     sync.WaitGroup
				ours, vsCoturn         *nb.Report
				oursErr, vsErr, cotErr error
				cm, cf                 nb.Behavior
				coturnOut              string
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ours, oursErr = labNat(ctx, lab, bin, natlab.ServerIP1)
			}()
			if missing == "" {
				wg.Add(2)
				go func() {
					defer wg.Done()
					vsCoturn, vsErr = labNat(ctx, lab, bin, natlab.ServerIP1+":"+strconv.Itoa(coturnPort))
				}()
				go func() {
					defer wg.Done()
					cm, cf, coturnOut, cotErr = labNatdiscovery(ctx, lab, natdiscovery)
				}()
			}
			wg.Wait()

			for _, r := range []*nb.Report{ours, vsCoturn} {
				if r != nil {
					t.Logf("server %s: mapped %s, mapping %s, filtering %s, hairpinning %s", r.Server, r.MappedAddress, r.Mapping, r.Filtering, r.Hairpinning)
				}
			}
			if missing == "" && cotErr == nil {
				t.Logf("turnutils_natdiscovery: mapping %s, filtering %s", cm, cf)
			}
			if oursErr != nil {
				t.Errorf("icebreaker nat against icebreaker serve: %v", oursErr)
			} else {
				checkLabReport(t, lab, "icebreaker serve", ours, c.nat, c.mapping, c.filtering, c.oldName)
				if ours.OtherAddress.String() != natlab.ServerIP2+":"+strconv.Itoa(ourPort+1) {
					t.Errorf("OTHER-ADDRESS of icebreaker serve: %s", ours.OtherAddress)
				}
			}
			if missing != "" {
				t.Skipf("cross-checks with coturn skipped: %s", missing)
			}
			if vsErr != nil {
				t.Errorf("icebreaker nat against coturn: %v", vsErr)
			} else {
				checkLabReport(t, lab, "coturn", vsCoturn, c.nat, c.mapping, c.filtering, c.oldName)
			}
			if cotErr != nil {
				t.Errorf("turnutils_natdiscovery against icebreaker serve: %v\n%s", cotErr, coturnOut)
			} else if cm != c.mapping || cf != c.filtering {
				t.Errorf("turnutils_natdiscovery against icebreaker serve says mapping %s, filtering %s; want %s, %s\n%s",
					cm, cf, c.mapping, c.filtering, coturnOut)
			}
		})
	}
	t.Run("lifetime", func(t *testing.T) {
		t.Parallel()
		testLabLifetime(t)
	})
}

// testLabLifetime shortens the NAT's UDP binding timeout to 2 s and checks
// that the binding lifetime test (RFC 5780, Section 4.6) sees a binding
// alive after 1 s of silence and gone well before the 10 s maximum.
func testLabLifetime(t *testing.T) {
	lab := natlab.New(t, natlab.Options{A: natlab.EIM, B: natlab.None})
	bin := natlab.BuildBinary(t, icebreakerPkg)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sysctl, err := exec.LookPath("sysctl")
	if err != nil {
		t.Fatalf("sysctl: %v", err)
	}
	// An unreplied-then-answered UDP flow lives nf_conntrack_udp_timeout.
	if out, err := lab.Run(ctx, "natA", sysctl, "-w", "net.netfilter.nf_conntrack_udp_timeout=2"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	startOurServer(ctx, t, lab, bin)
	r, err := labNat(ctx, lab, bin, natlab.ServerIP1, "--lifetime", "--lifetime-max", "10s", "--hairpin=false")
	if err != nil {
		t.Fatal(err)
	}
	l := r.BindingLifetime
	if l == nil {
		t.Fatalf("no binding lifetime; not run: %+v", r.NotRun)
	}
	t.Logf("binding lifetime with a 2 s conntrack timeout: %s", l)
	if l.Alive < time.Second || l.Expired == 0 || l.Expired > 6*time.Second || l.Max != 10*time.Second {
		t.Errorf("lifetime %+v: want alive after 1s and expired by the 4s step", *l)
	}
}

// startOurServer starts `icebreaker serve` with RFC 5780 in wan and waits
// until it listens on the alternate address.
func startOurServer(ctx context.Context, t *testing.T, lab *natlab.Lab, bin string) {
	t.Helper()
	p := lab.Start(ctx, "wan", bin, "serve", "--rendezvous", "off", "--listen", natlab.ServerIP1, "--alt-ip", natlab.ServerIP2,
		"--port", strconv.Itoa(ourPort))
	if err := p.WaitForOutput(ctx, natlab.ServerIP2+":"+strconv.Itoa(ourPort+1)); err != nil {
		t.Fatal(err)
	}
}

// startCoturn starts coturn's turnserver as an RFC 5780 STUN server in wan
// and waits until it answers (it prints no line that says so).
func startCoturn(ctx context.Context, t *testing.T, lab *natlab.Lab, bin, turnserver string) {
	t.Helper()
	dir := t.TempDir()
	p := lab.Start(ctx, "wan", turnserver, "-n", "--no-cli", "--no-tls", "--no-dtls", "--stun-only",
		"--listening-ip", natlab.ServerIP1, "--listening-ip", natlab.ServerIP2, "-p", strconv.Itoa(coturnPort),
		"--log-file", "stdout", "--simple-log", "--pidfile", filepath.Join(dir, "turnserver.pid"),
		"--userdb", filepath.Join(dir, "turndb"))
	addr := natlab.ServerIP1 + ":" + strconv.Itoa(coturnPort)
	for i := 0; ; i++ {
		// Asked from wan itself (no NAT), answered tests finish at once.
		out, err := lab.Run(ctx, "wan", bin, "nat", "--json", "--hairpin=false", "--rto", "50ms", "--timeout", "300ms", addr)
		if err == nil {
			return
		}
		if p.Exited() || i == 50 || ctx.Err() != nil {
			t.Fatalf("coturn does not answer on %s: %v\n%s\ncoturn output:\n%s", addr, err, out, p.Output())
		}
	}
}

// labNat runs `icebreaker nat --json` in lanA and decodes its report.
func labNat(ctx context.Context, lab *natlab.Lab, bin, server string, extra ...string) (*nb.Report, error) {
	args := append([]string{"nat", "--json"}, extra...)
	out, err := lab.Run(ctx, "lanA", bin, append(args, server)...)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	var r nb.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("decoding the report: %w\n%s", err, out)
	}
	return &r, nil
}

var natdiscoveryLine = regexp.MustCompile(`(?m)^(?:NAT with (.+) (Mapping|Filtering)!|No NAT! \((Endpoint Independent) (Mapping)\))$`)

// labNatdiscovery runs coturn's turnutils_natdiscovery -m -f in lanA
// against our server and parses its verdict lines, such as
// "NAT with Endpoint Independent Mapping!".
func labNatdiscovery(ctx context.Context, lab *natlab.Lab, natdiscovery string) (m, f nb.Behavior, out string, err error) {
	b, err := lab.Run(ctx, "lanA", natdiscovery, "-m", "-f", "-p", strconv.Itoa(ourPort), natlab.ServerIP1)
	out = string(b)
	if err != nil {
		return 0, 0, out, err
	}
	names := map[string]nb.Behavior{
		"Endpoint Independent":       nb.EndpointIndependent,
		"Address Dependent":          nb.AddressDependent,
		"Address and Port Dependent": nb.AddressAndPortDependent,
	}
	for _, l := range natdiscoveryLine.FindAllStringSubmatch(out, -1) {
		what, kind := l[1], l[2]
		if what == "" {
			what, kind = l[3], l[4]
		}
		switch kind {
		case "Mapping":
			if m == nb.BehaviorUnknown { // "No NAT!" comes before "NAT with ... Mapping!"
				m = names[what]
			}
		case "Filtering":
			f = names[what]
		}
	}
	if m == nb.BehaviorUnknown || f == nb.BehaviorUnknown {
		return m, f, out, fmt.Errorf("no mapping or filtering verdict in the output")
	}
	return m, f, out, nil
}

func checkLabReport(t *testing.T, lab *natlab.Lab, server string, r *nb.Report, nat bool, m, f nb.Behavior, oldName string) {
	t.Helper()
	if r.Mapping != m || r.Filtering != f || r.OldName != oldName {
		t.Errorf("against %s: mapping %s, filtering %s (%s); want %s, %s (%s)\nnot run: %+v",
			server, r.Mapping, r.Filtering, r.OldName, m, f, oldName, r.NotRun)
	}
	if r.NATPresent != map[bool]nb.Tristate{true: nb.Yes, false: nb.No}[nat] {
		t.Errorf("against %s: nat_present %s, want %v", server, r.NATPresent, nat)
	}
	if r.MappedAddress.Addr() != lab.Addr("natA") || r.LocalAddress.Addr() != lab.Addr("lanA") {
		t.Errorf("against %s: mapped %s, local %s; want %s and %s", server, r.MappedAddress, r.LocalAddress, lab.Addr("natA"), lab.Addr("lanA"))
	}
	// The lab's NATs do not hairpin (their dnat rules match only wan0);
	// without a NAT, a packet to our own address arrives.
	if want := map[bool]nb.Tristate{true: nb.No, false: nb.Yes}[nat]; r.Hairpinning != want {
		t.Errorf("against %s: hairpinning %s, want %s", server, r.Hairpinning, want)
	}
	if len(r.NotRun) != 0 || r.Verdict == "" {
		t.Errorf("against %s: not run %+v, verdict %q", server, r.NotRun, r.Verdict)
	}
}
