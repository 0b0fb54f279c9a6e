//go:build linux

package natlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

const echoPkg = "./testdata/udpecho"

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{None, EIM, AddrRestricted, FullCone, Random, FullyRandom} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m.String(), got, err)
		}
	}
	if got, err := ParseMode(" Symmetric "); err != nil || got != Random || Symmetric != Random {
		t.Errorf("ParseMode(symmetric) = %q, %v", got, err)
	}
	if _, err := ParseMode("cone"); err == nil {
		t.Error("ParseMode(cone) succeeded")
	}
	if s := Mode("").String(); s != "eim" {
		t.Errorf("zero Mode prints as %q", s)
	}
}

func TestNftRules(t *testing.T) {
	for _, c := range []struct {
		m         Mode
		want, not []string
	}{
		{EIM, []string{"oifname \"wan0\" masquerade\n", "ct state new drop"}, []string{"dnat", "@contacted"}},
		{Random, []string{"masquerade random"}, []string{"dnat"}},
		{FullyRandom, []string{"masquerade fully-random"}, []string{"dnat"}},
		{FullCone, []string{"udp dport 1024-65535 dnat ip to 10.9.1.2"}, []string{"@contacted"}},
		{AddrRestricted, []string{"update @contacted { ip daddr . udp sport }", "ip saddr . udp dport @contacted dnat ip to 10.9.1.2"}, nil},
	} {
		r := nftRules(c.m, LanAIP, netip.Addr{})
		for _, w := range c.want {
			if !strings.Contains(r, w) {
				t.Errorf("%s rules lack %q:\n%s", c.m, w, r)
			}
		}
		for _, n := range c.not {
			if strings.Contains(r, n) {
				t.Errorf("%s rules contain %q:\n%s", c.m, n, r)
			}
		}
	}
}

// TestLab checks every mode on both sides: who is seen as the sender, whether
// the mapping depends on the destination, and which unsolicited senders get
// through.
func TestLab(t *testing.T) {
	for _, o := range []Options{{A: EIM, B: Random}, {A: AddrRestricted, B: FullCone}, {A: None, B: FullyRandom}} {
		t.Run(o.A.String()+"_"+o.B.String(), func(t *testing.T) {
			t.Parallel()
			l := New(t, o)
			bin := BuildBinary(t, echoPkg)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()

			filt := l.Start(ctx, "wan", bin, "serve", "-listen", ServerIP1+":7000",
				"-alt", ServerIP1+":7001", "-alt", ServerIP2+":7001")
			mapg := l.Start(ctx, "wan", bin, "serve", "-listen", ServerIP1+":7002", "-listen", ServerIP2+":7002")
			for _, p := range []*Proc{filt, mapg} {
				if err := p.WaitForOutput(ctx, "listening"); err != nil {
					t.Fatal(err)
				}
			}
			checkSide(ctx, t, l, bin, "A", o.A)
			checkSide(ctx, t, l, bin, "B", o.B)

			if o.A == EIM {
				// Pitfall 2: the "internet" drops private destinations
				// silently, so sendto from wan to a LAN address succeeds.
				out, err := l.Run(ctx, "wan", bin, "send", "-to", LanAIP+":40000", "-wait", "300ms")
				if err != nil || strings.Contains(string(out), "send:") {
					t.Errorf("send from wan to %s: %v\n%s", LanAIP, err, out)
				}
				if ping, err := exec.LookPath("ping"); err == nil {
					if out, err := l.Run(ctx, "lanA", ping, "-c1", "-W2", ServerIP1); err != nil {
						t.Errorf("ping from lanA: %v\n%s", err, out)
					}
				} else {
					t.Log("ping not installed; ICMP check skipped")
				}
				l.FlushConntrack()
			}
		})
	}
}

func checkSide(ctx context.Context, t *testing.T, l *Lab, bin, side string, mode Mode) {
	t.Helper()
	lan, pub := "lan"+side, l.Addr("nat"+side)
	preserves := mode != Random && mode != FullyRandom

	// Filtering: lanX talks to ServerIP1:7000 only; the server answers and
	// also probes from ServerIP1:7001 and ServerIP2:7001.
	out, err := l.Run(ctx, lan, bin, "send", "-bind", "0.0.0.0:40000", "-to", ServerIP1+":7000", "-wait", "1s")
	if err != nil {
		t.Fatalf("%s (%s): %v\n%s", lan, mode, err, out)
	}
	got := parseRecv(out)
	m := mappedFrom(t, got, ServerIP1+":7000")
	if m.Addr() != pub {
		t.Errorf("%s (%s): server saw %s, want address %s", lan, mode, m, pub)
	}
	if preserves && m.Port() != 40000 {
		t.Errorf("%s (%s): server saw %s, want port 40000 preserved", lan, mode, m)
	}
	wantSameAddr := mode == AddrRestricted || mode == FullCone || mode == None
	wantAny := mode == FullCone || mode == None
	if _, ok := got[ServerIP1+":7001"]; ok != wantSameAddr {
		t.Errorf("%s (%s): probe from the contacted address, other port: received=%v, want %v\n%s", lan, mode, ok, wantSameAddr, out)
	}
	if _, ok := got[ServerIP2+":7001"]; ok != wantAny {
		t.Errorf("%s (%s): probe from another address: received=%v, want %v\n%s", lan, mode, ok, wantAny, out)
	}

	// Mapping: one socket talks to two destinations.
	out, err = l.Run(ctx, lan, bin, "send", "-bind", "0.0.0.0:40001", "-to", ServerIP1+":7002", "-to", ServerIP2+":7002", "-wait", "1s")
	if err != nil {
		t.Fatalf("%s (%s): %v\n%s", lan, mode, err, out)
	}
	got = parseRecv(out)
	m1, m2 := mappedFrom(t, got, ServerIP1+":7002"), mappedFrom(t, got, ServerIP2+":7002")
	if m1.Addr() != pub || m2.Addr() != pub {
		t.Errorf("%s (%s): mapped %s and %s, want address %s", lan, mode, m1, m2, pub)
	}
	if preserves && (m1.Port() != 40001 || m2.Port() != 40001) {
		t.Errorf("%s (%s): mapped %s and %s, want port 40001 for both", lan, mode, m1, m2)
	}
	if !preserves && m1 == m2 {
		t.Errorf("%s (%s): same mapping %s for two destinations", lan, mode, m1)
	}
}

// parseRecv maps each sender in udpecho send output to its payloads.
func parseRecv(out []byte) map[string][]string {
	got := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "recv" {
			got[f[1]] = append(got[f[1]], f[2])
		}
	}
	return got
}

// mappedFrom returns the mapped address reported by the server at from.
func mappedFrom(t *testing.T, got map[string][]string, from string) netip.AddrPort {
	t.Helper()
	for _, p := range got[from] {
		if s, ok := strings.CutPrefix(p, "mapped="); ok {
			ap, err := netip.ParseAddrPort(s)
			if err != nil {
				t.Fatalf("bad reply %q from %s", p, from)
			}
			return ap
		}
	}
	t.Fatalf("no reply from %s; received %v", from, got)
	return netip.AddrPort{}
}

// TestCleanupRemovesNamespaces checks that a lab's cleanup deletes its
// namespaces and kills its processes.
func TestCleanupRemovesNamespaces(t *testing.T) {
	var names []string
	var pid int
	t.Run("lab", func(t *testing.T) {
		l := New(t, Options{A: EIM, B: None})
		bin := BuildBinary(t, echoPkg)
		for _, h := range hosts {
			if ns := l.NS(h); ns != "" {
				names = append(names, ns)
			}
		}
		p := l.Start(context.Background(), "lanA", bin, "serve", "-listen", "0.0.0.0:7000")
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := p.WaitForOutput(ctx, "listening"); err != nil {
			t.Fatal(err)
		}
		pid = p.PID()
	})
	if len(names) == 0 {
		t.Skip("lab was not built")
	}
	if len(names) != 4 {
		t.Errorf("namespaces %v, want 4 (natB absent in None mode)", names)
	}
	out, err := exec.Command(toolPath("ip"), "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s still listed after cleanup:\n%s", n, out)
		}
		if _, err := os.Stat("/run/netns/" + n); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/run/netns/%s: %v, want not exist", n, err)
		}
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after cleanup (kill 0: %v)", pid, err)
	}
}

// fakeTB lets New fail without failing the real test.
type fakeTB struct {
	testing.TB
	cleanups []func()
	fatal    string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Skipf(s string, args ...any) {
	f.fatal = "skip: " + fmt.Sprintf(s, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(s string, args ...any) {
	f.fatal = fmt.Sprintf(s, args...)
	runtime.Goexit()
}

// TestNewFailureCleansUp makes New fail after some namespaces exist and checks
// that its cleanup removes them. It must not run in parallel (it sets a hook).
func TestNewFailureCleansUp(t *testing.T) {
	fake := &fakeTB{TB: t}
	hook := func(tb testing.TB, host string) error {
		if tb == fake && host == "lanB" {
			return errors.New("injected failure")
		}
		return nil
	}
	testHookAddNS.Store(&hook)
	defer testHookAddNS.Store(nil)

	ours := func() []string {
		entries, _ := os.ReadDir("/run/netns")
		var names []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), fmt.Sprintf("%s%d-", nsPrefix, os.Getpid())) {
				names = append(names, e.Name())
			}
		}
		return names
	}
	before := len(ours())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(fake, Options{})
		fake.fatal = "New returned"
	}()
	<-done
	if strings.HasPrefix(fake.fatal, "skip: ") {
		t.Skip(fake.fatal)
	}
	if !strings.Contains(fake.fatal, "injected failure") {
		t.Fatalf("New ended with %q, want the injected failure", fake.fatal)
	}
	if n := len(ours()) - before; n != 3 {
		t.Errorf("%d namespaces existed at the failure, want 3 (wan, lanA, natA)", n)
	}
	for i := len(fake.cleanups) - 1; i >= 0; i-- {
		fake.cleanups[i]()
	}
	if left := ours(); len(left) != before {
		t.Errorf("namespaces left after cleanup: %v", left)
	}
}

// TestMain removes the binaries built by BuildBinary.
func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// TestStartWithStdin feeds a process in a namespace its standard input.
func TestStartWithStdin(t *testing.T) {
	t.Parallel()
	l := New(t, Options{A: None, B: None})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat:", err)
	}
	p := l.StartWithStdin(ctx, "lanA", cat)
	if _, err := io.WriteString(p.Stdin(), "line one\nline two\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitForOutput(ctx, "line two\n"); err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Error("cat exited before its standard input was closed")
	}
	if err := p.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("cat: %v\n%s", err, p.Output())
	}
	if got := p.Output(); got != "line one\nline two\n" {
		t.Errorf("cat printed %q", got)
	}
	if q := l.Start(ctx, "lanB", cat); q.Stdin() != nil {
		t.Error("Start gave the process a standard input pipe")
	}
}

// lossRule matches the rule Loss installs, with its counter.
var lossRule = regexp.MustCompile(`numgen random mod 100 < (\d+) counter packets (\d+) bytes \d+ drop`)

// TestLoss checks that Loss drops forwarded packets on the NAT of a side,
// that a second call replaces the rate, and its argument checks.
func TestLoss(t *testing.T) {
	t.Parallel()
	l := New(t, Options{A: EIM, B: None})
	bin := BuildBinary(t, echoPkg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		side    string
		percent int
	}{{"A", 0}, {"A", 100}, {"A", -5}, {"B", 20}, {"C", 20}} {
		if err := l.Loss(c.side, c.percent); err == nil {
			t.Errorf("Loss(%q, %d) succeeded", c.side, c.percent)
		}
	}
	rules := func() [][]string {
		t.Helper()
		out, err := exec.Command(toolPath("ip"), "netns", "exec", l.NS("natA"), toolPath("nft"), "list", "table", "ip", "natlab_loss").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v\n%s", err, out)
		}
		return lossRule.FindAllStringSubmatch(string(out), -1)
	}

	if err := l.Loss("A", 60); err != nil {
		t.Fatal(err)
	}
	srv := l.Start(ctx, "wan", bin, "serve", "-listen", ServerIP1+":7000")
	if err := srv.WaitForOutput(ctx, "listening"); err != nil {
		t.Fatal(err)
	}
	// 2×24 datagrams out (and the answers back) through natA: the chance
	// that none is dropped is 0.4^48.
	args := []string{"send", "-bind", "0.0.0.0:40000", "-wait", "300ms"}
	for range 24 {
		args = append(args, "-to", ServerIP1+":7000")
	}
	out, err := l.Run(ctx, "lanA", bin, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := rules()
	if len(r) != 1 || r[0][1] != "60" || r[0][2] == "0" {
		t.Errorf("loss rules after sending %d datagrams: %q, want one at 60%% that dropped some", 48, r)
	}
	if got := strings.Count(string(out), "recv "); got >= 48 {
		t.Errorf("%d answers to 48 datagrams at 60%% loss", got)
	}

	if err := l.Loss("A", 30); err != nil {
		t.Fatal(err)
	}
	if r := rules(); len(r) != 1 || r[0][1] != "30" || r[0][2] != "0" {
		t.Errorf("loss rules after Loss(A, 30): %q, want only a new one at 30%%", r)
	}
}

// TestBlockDirect checks that BlockDirect drops the traffic between the
// two sides' public addresses, and only that, and that PathCounts counts
// what wan forwarded, dropped and received.
func TestBlockDirect(t *testing.T) {
	t.Parallel()
	l := New(t, Options{A: None, B: None})
	bin := BuildBinary(t, echoPkg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	peer := l.Start(ctx, "lanB", bin, "serve", "-listen", NatBPublic+":7000")
	srv := l.Start(ctx, "wan", bin, "serve", "-listen", ServerIP1+":7000")
	for _, p := range []*Proc{peer, srv} {
		if err := p.WaitForOutput(ctx, "listening"); err != nil {
			t.Fatal(err)
		}
	}
	// send sends 2 datagrams to each of the peer and the server, and
	// returns how many answers came from each.
	send := func() (fromPeer, fromServer int) {
		t.Helper()
		out, err := l.Run(ctx, "lanA", bin, "send", "-to", NatBPublic+":7000", "-to", ServerIP1+":7000", "-wait", "300ms")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.Count(string(out), "recv "+NatBPublic), strings.Count(string(out), "recv "+ServerIP1)
	}
	counts := func() PathCounts {
		t.Helper()
		pc, err := l.PathCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	c0 := counts()
	if p, s := send(); p != 2 || s != 2 {
		t.Fatalf("open: %d answers from the peer, %d from the server; want 2 and 2", p, s)
	}
	c1 := counts()
	// 2 datagrams and 2 answers each way; the ARP frames of the bridge are
	// not IP and not counted.
	if d, b, s := c1.Direct.Sub(c0.Direct), c1.Blocked.Sub(c0.Blocked), c1.Server.Sub(c0.Server); d.Packets != 4 || b.Packets != 0 || s.Packets != 2 {
		t.Errorf("open: direct %+v, blocked %+v, server %+v; want 4, 0 and 2 packets", d, b, s)
	}
	if err := l.BlockDirect(true); err != nil {
		t.Fatal(err)
	}
	if p, s := send(); p != 0 || s != 2 {
		t.Fatalf("blocked: %d answers from the peer, %d from the server; want 0 and 2", p, s)
	}
	c2 := counts()
	if d, b, s := c2.Direct.Sub(c1.Direct), c2.Blocked.Sub(c1.Blocked), c2.Server.Sub(c1.Server); d.Packets != 0 || b.Packets != 2 || s.Packets != 2 {
		t.Errorf("blocked: direct %+v, blocked %+v, server %+v; want 0, 2 and 2 packets", d, b, s)
	}
	for range 2 { // unblocking twice is fine
		if err := l.BlockDirect(false); err != nil {
			t.Fatal(err)
		}
	}
	if p, s := send(); p != 2 || s != 2 {
		t.Fatalf("unblocked: %d answers from the peer, %d from the server; want 2 and 2", p, s)
	}
}
