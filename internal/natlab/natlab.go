// Package natlab is a test harness that builds real kernel NATs on one Linux
// machine with network namespaces and nftables, so that tests can prove STUN,
// RFC 5780 discovery, TURN and ICE against real conntrack and real port
// allocation instead of a simulation. It is meant for tests only.
//
// [New] builds this topology, with fresh namespace names for every lab:
//
//	              wan   (bridge br0: 203.0.113.1/24 and 203.0.113.2/24, the "servers")
//	             /    \
//	203.0.113.10        203.0.113.20      wan0 of natA / natB
//	  natA                natB            nftables NAT, one Mode per side
//	10.9.1.1/24         10.9.2.1/24       lan0
//	  lanA                lanB
//	10.9.1.2/24         10.9.2.2/24       eth0, default route via its NAT
//
// The NAT behaviour of each side is described in RFC 4787 terms
// (endpoint-independent, address-dependent, address-and-port-dependent
// mapping and filtering) at the [Mode] constants. Every NAT drops unsolicited
// new inbound traffic addressed to itself at the input hook, like a home
// router. The wan namespace routes 10/8, 172.16/12 and 192.168/16 into a dead
// interface, so traffic to private addresses is dropped silently rather than
// failing with ENETUNREACH. Use only the addresses of the lab in tests.
//
// With [None] a side has no NAT namespace: lanX sits on the wan bridge with
// the public address of that side (203.0.113.10 or 203.0.113.20), NS("natX")
// returns "" and Start or Run on "natX" fail the test.
//
// With Options.PortMapA, natA also gets the non-reserved wan address
// NatAPortMapIP (routed to it only inside the lab) and the nftables chains
// of miniupnpd, which [Lab.StartMiniUPnPd] starts on natA with a generated
// configuration (UPnP IGD, NAT-PMP and PCP); see PortMapOptions.
//
// A test uses it like this:
//
//	lab := natlab.New(t, natlab.Options{A: natlab.EIM, B: natlab.Random})
//	bin := natlab.BuildBinary(t, "github.com/icebreaker-net/icebreaker/cmd/icebreaker")
//	srv := lab.Start(ctx, "wan", bin, "serve", "-listen", natlab.ServerIP1+":3478")
//	if err := srv.WaitForOutput(ctx, "listening"); err != nil {
//		t.Fatal(err)
//	}
//	out, err := lab.Run(ctx, "lanA", bin, "probe", natlab.ServerIP1+":3478")
//
// (the icebreaker arguments above are only illustrative).
//
// Hosts are named "wan", "natA", "natB", "lanA" and "lanB". The lab needs root
// and the ip (iproute2), nft (nftables) and conntrack (conntrack) tools; when
// they are missing New skips the test, or fails it when the environment
// variable CI is "true".
package natlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Addresses of the lab (see the package documentation).
const (
	ServerIP1  = "203.0.113.1"  // first server address, on the wan bridge
	ServerIP2  = "203.0.113.2"  // second server address (RFC 5780 alternate)
	NatAPublic = "203.0.113.10" // natA's wan address, or lanA's in None mode
	NatBPublic = "203.0.113.20" // natB's wan address, or lanB's in None mode
	LanAIP     = "10.9.1.2"     // lanA behind a NAT
	LanBIP     = "10.9.2.2"     // lanB behind a NAT
	NatALanIP  = "10.9.1.1"     // natA's LAN address, lanA's gateway
	NatBLanIP  = "10.9.2.1"     // natB's LAN address, lanB's gateway
)

// Options configures a lab. The zero value gives two EIM NATs.
type Options struct {
	A, B Mode // NAT modes of side A (natA/lanA) and side B (natB/lanB); "" means EIM

	// PortMapA prepares natA for a port-mapping daemon (see
	// PortMapOptions and Lab.StartMiniUPnPd); A must not be None.
	PortMapA PortMapOptions
}

// hosts lists the host names in creation order.
var hosts = []string{"wan", "natA", "natB", "lanA", "lanB"}

// nsPrefix starts every namespace name made by this package. A full name is
// nsPrefix + pid + "-" + 6 hex digits + "-" + host.
const nsPrefix = "nl-"

// Lab is one instance of the topology. Its methods may be called from several
// goroutines, except where they are documented to fail the test.
type Lab struct {
	t       testing.TB
	a, b    Mode
	portMap PortMapOptions
	prefix  string

	mu      sync.Mutex
	created []string // namespaces that exist, in creation order
	procs   []*Proc
	closed  bool

	pathsOnce sync.Once // installs the path counters in wan (paths.go)
	pathsErr  error
}

// New builds a lab and registers a t.Cleanup that kills every process started
// through it and deletes all its namespaces; the cleanup also runs when New
// itself fails halfway, or when the test fails or panics. New skips the test
// if it is not running as root on Linux or a tool is missing (or fails it when
// CI=true). It must be called from the goroutine running the test.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	a, okA := opts.A.norm()
	b, okB := opts.B.norm()
	if !okA || !okB || (opts.PortMapA.Enable && a == None) {
		t.Fatalf("natlab: invalid Options %+v", opts)
	}
	requireEnv(t)
	l := &Lab{t: t, a: a, b: b, portMap: opts.PortMapA, prefix: newPrefix()}
	t.Cleanup(l.cleanup)
	reapStale()

	// The first namespace tells whether namespaces can be made here at all
	// (a root user in an unprivileged container cannot).
	if err := l.addNS("wan"); err != nil {
		skipOrFatal(t, fmt.Sprintf("cannot create network namespaces: %v", err))
	}
	wan := l.NS("wan")
	steps := [][]string{
		{"-n", wan, "link", "set", "lo", "up"},
		{"-n", wan, "link", "add", "br0", "type", "bridge"},
		{"-n", wan, "addr", "add", ServerIP1 + "/24", "dev", "br0"},
		{"-n", wan, "addr", "add", ServerIP2 + "/24", "dev", "br0"},
		{"-n", wan, "link", "set", "br0", "up"},
		// Pitfall 2: private destinations go into a dead veth.
		{"-n", wan, "link", "add", "sink0", "type", "veth", "peer", "name", "sink1"},
		{"-n", wan, "link", "set", "sink0", "up"},
		{"-n", wan, "link", "set", "sink1", "up"},
		{"-n", wan, "route", "add", "10.0.0.0/8", "dev", "sink0"},
		{"-n", wan, "route", "add", "172.16.0.0/12", "dev", "sink0"},
		{"-n", wan, "route", "add", "192.168.0.0/16", "dev", "sink0"},
	}
	if err := runIP(steps); err != nil {
		t.Fatal(err)
	}
	if err := l.buildSide("A", a, NatAPublic, NatALanIP, LanAIP); err != nil {
		t.Fatal(err)
	}
	if err := l.buildSide("B", b, NatBPublic, NatBLanIP, LanBIP); err != nil {
		t.Fatal(err)
	}
	if l.portMap.Enable {
		if err := l.setupPortMap(); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// buildSide creates natX (unless mode is None) and lanX and wires them to the
// wan bridge through the bridge port "portX".
func (l *Lab) buildSide(side string, mode Mode, public, gw, lanIP string) error {
	natName, lanName := "nat"+side, "lan"+side
	if err := l.addNS(lanName); err != nil {
		return err
	}
	wan, lan, port := l.NS("wan"), l.NS(lanName), "port"+side
	if mode == None {
		return runIP([][]string{
			{"-n", lan, "link", "set", "lo", "up"},
			{"-n", wan, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", lan},
			{"-n", wan, "link", "set", port, "master", "br0", "up"},
			{"-n", lan, "addr", "add", public + "/24", "dev", "eth0"},
			{"-n", lan, "link", "set", "eth0", "up"},
			{"-n", lan, "route", "add", "default", "via", ServerIP1},
		})
	}
	if err := l.addNS(natName); err != nil {
		return err
	}
	nat := l.NS(natName)
	err := runIP([][]string{
		{"-n", lan, "link", "set", "lo", "up"},
		{"-n", nat, "link", "set", "lo", "up"},
		{"-n", wan, "link", "add", port, "type", "veth", "peer", "name", "wan0", "netns", nat},
		{"-n", wan, "link", "set", port, "master", "br0", "up"},
		{"-n", nat, "addr", "add", public + "/24", "dev", "wan0"},
		{"-n", nat, "link", "set", "wan0", "up"},
		{"-n", nat, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", lan},
		{"-n", nat, "addr", "add", gw + "/24", "dev", "lan0"},
		{"-n", nat, "link", "set", "lan0", "up"},
		{"-n", nat, "route", "add", "default", "via", ServerIP1},
		{"-n", lan, "addr", "add", lanIP + "/24", "dev", "eth0"},
		{"-n", lan, "link", "set", "eth0", "up"},
		{"-n", lan, "route", "add", "default", "via", gw},
	})
	if err != nil {
		return err
	}
	// net.ipv4.ip_forward=1 in natX. /proc/sys/net belongs to the network
	// namespace of the process that opens it, so tee run inside natX writes
	// natX's value (this needs no sysctl binary and no setns in this process).
	if err := runTool(nat, strings.NewReader("1\n"), "tee", "/proc/sys/net/ipv4/ip_forward"); err != nil {
		return err
	}
	var snatTo netip.Addr
	if side == "A" && l.portMap.Enable && !l.portMap.DoubleNAT {
		snatTo = netip.MustParseAddr(NatAPortMapIP)
	}
	if err := runTool(nat, strings.NewReader(nftRules(mode, lanIP, snatTo)), "nft", "-f", "-"); err != nil {
		return err
	}
	return runTool(nat, nil, "conntrack", "-F")
}

// NS returns the real namespace name of host ("wan", "natA", "natB", "lanA"
// or "lanB"), for use with "ip netns exec". It returns "" for the NAT of a
// side in None mode, and panics on an unknown host name.
func (l *Lab) NS(host string) string {
	switch host {
	case "wan", "lanA", "lanB":
	case "natA":
		if l.a == None {
			return ""
		}
	case "natB":
		if l.b == None {
			return ""
		}
	default:
		panic(fmt.Sprintf("natlab: unknown host %q (want wan, natA, natB, lanA or lanB)", host))
	}
	return l.prefix + host
}

// Addr returns the main address of host: ServerIP1 for "wan", the public
// (wan side) address for "natA"/"natB", and the LAN address for "lanA"/"lanB"
// (10.9.1.2 / 10.9.2.2). In None mode the public address of side X is lanX's
// own address, so Addr("natX") and Addr("lanX") are both the public address;
// Addr("natX") is always the address peers on the wan see for side X. Addr
// panics on an unknown host name.
func (l *Lab) Addr(host string) netip.Addr {
	var s string
	switch host {
	case "wan":
		s = ServerIP1
	case "natA":
		s = NatAPublic
	case "natB":
		s = NatBPublic
	case "lanA":
		s = LanAIP
		if l.a == None {
			s = NatAPublic
		}
	case "lanB":
		s = LanBIP
		if l.b == None {
			s = NatBPublic
		}
	default:
		panic(fmt.Sprintf("natlab: unknown host %q (want wan, natA, natB, lanA or lanB)", host))
	}
	return netip.MustParseAddr(s)
}

// FlushConntrack empties the conntrack tables of both NATs (pitfall 3: old
// mappings survive otherwise). Failures are reported with t.Errorf.
func (l *Lab) FlushConntrack() {
	for _, h := range []string{"natA", "natB"} {
		if ns := l.NS(h); ns != "" {
			if err := runTool(ns, nil, "conntrack", "-F"); err != nil {
				l.t.Errorf("natlab: %v", err)
			}
		}
	}
}

// Loss makes the NAT of side "A" or "B" drop the given percentage of the
// packets it forwards, in both directions, at random: the lab's stand-in for
// "tc qdisc add ... netem loss N%", because sch_netem is often not built
// into the kernels CI machines run. It uses nftables' random number
// generator (numgen random) in a forward hook ahead of the NAT's rules.
// percent must be 1-99; the side must have a NAT. A later call replaces
// the loss rate of an earlier one.
func (l *Lab) Loss(side string, percent int) error {
	if percent < 1 || percent > 99 {
		return fmt.Errorf("natlab: loss %d%% outside 1-99", percent)
	}
	if side != "A" && side != "B" {
		return fmt.Errorf("natlab: unknown side %q (want A or B)", side)
	}
	ns := l.NS("nat" + side)
	if ns == "" {
		return fmt.Errorf("natlab: side %q has no NAT to drop packets on", side)
	}
	// "table" creates the table if it is missing, so that "delete" always
	// succeeds and the new rule replaces an earlier one atomically.
	rules := fmt.Sprintf("table ip natlab_loss\ndelete table ip natlab_loss\n"+
		"table ip natlab_loss {\n\tchain forward { type filter hook forward priority filter - 10; policy accept;\n"+
		"\t\tnumgen random mod 100 < %d counter drop\n\t}\n}\n", percent)
	return runTool(ns, strings.NewReader(rules), "nft", "-f", "-")
}

// testHookAddNS, when set by this package's tests, runs before each namespace
// is created; an error from it makes New fail there.
var testHookAddNS atomic.Pointer[func(t testing.TB, host string) error]

// addNS creates the namespace of host and records it for cleanup.
func (l *Lab) addNS(host string) error {
	name := l.prefix + host
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("natlab: lab already cleaned up")
	}
	if hook := testHookAddNS.Load(); hook != nil {
		if err := (*hook)(l.t, host); err != nil {
			return err
		}
	}
	if err := run(nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	l.created = append(l.created, name)
	return nil
}

// cleanup kills every process of the lab, then deletes its namespaces.
func (l *Lab) cleanup() {
	l.mu.Lock()
	l.closed = true
	procs, created := l.procs, l.created
	l.procs, l.created = nil, nil
	l.mu.Unlock()

	// The processes' own cleanups ran first (they were registered after
	// the lab's); show what they printed when the test failed.
	for _, p := range procs {
		if l.t.Failed() {
			l.t.Logf("natlab: output of %s:\n%s", p, p.Output())
		}
	}
	for i := len(created) - 1; i >= 0; i-- {
		ns := created[i]
		killNSPids(ns)
		if err := run(nil, "ip", "netns", "del", ns); err != nil {
			l.t.Errorf("natlab: cleanup: %v", err)
		}
	}
}

// killNSPids kills, by PID, every process still running in the namespace ns
// (all of them were started through a lab, or by such a process).
func killNSPids(ns string) {
	out, err := exec.Command(toolPath("ip"), "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			killPID(pid)
		}
	}
}

// newPrefix returns a namespace name prefix unique to this process and lab.
func newPrefix() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), hex.EncodeToString(b[:]))
}

// reapStale deletes namespaces left behind by earlier lab processes that died
// without running their cleanups (for example a test binary killed by
// "go test -timeout"): names made by this package whose process is gone and
// that are older than a minute; processes still running in them are killed
// first. Errors are ignored.
func reapStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		parts := strings.Split(rest, "-")
		if len(parts) != 3 || len(parts[1]) != 6 {
			continue
		}
		pid, err := strconv.Atoi(parts[0])
		if err != nil || pid <= 0 || pid == os.Getpid() || pidAlive(pid) {
			continue
		}
		if _, err := hex.DecodeString(parts[1]); err != nil {
			continue
		}
		known := false
		for _, h := range hosts {
			known = known || parts[2] == h
		}
		info, err := e.Info()
		if !known || err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		killNSPids(name)
		_ = run(nil, "ip", "netns", "del", name)
	}
}

var (
	toolsOnce sync.Once
	toolPaths map[string]string
	toolErr   string
)

// requireEnv skips (or, with CI=true, fails) the test unless the lab can run.
func requireEnv(t testing.TB) {
	t.Helper()
	toolsOnce.Do(func() {
		toolPaths = map[string]string{}
		var problems []string
		if !supported {
			problems = append(problems, "needs Linux (running on "+runtime.GOOS+")")
		} else if os.Geteuid() != 0 {
			problems = append(problems, "needs root")
		}
		for _, tool := range []string{"ip", "nft", "conntrack"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				problems = append(problems, "missing "+tool+" (apt-get install -y iproute2 nftables conntrack)")
				continue
			}
			toolPaths[tool] = p
		}
		toolErr = strings.Join(problems, "; ")
	})
	if toolErr != "" {
		skipOrFatal(t, toolErr)
	}
}

func skipOrFatal(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("natlab: %s (CI=true, not skipping)", reason)
	}
	t.Skipf("natlab: %s", reason)
}

// toolPath returns the path found by requireEnv, or the bare name.
func toolPath(tool string) string {
	if p := toolPaths[tool]; p != "" {
		return p
	}
	return tool
}

// run runs a tool in the root namespace and returns an error that includes
// its output.
func run(stdin *strings.Reader, tool string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath(tool), args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("natlab: %s %s: %v: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// runIP runs "ip" once per argument list, stopping at the first error.
func runIP(steps [][]string) error {
	for _, s := range steps {
		if err := run(nil, "ip", s...); err != nil {
			return err
		}
	}
	return nil
}

// runTool runs tool inside namespace ns.
func runTool(ns string, stdin *strings.Reader, tool string, args ...string) error {
	return run(stdin, "ip", append([]string{"netns", "exec", ns, toolPath(tool)}, args...)...)
}
