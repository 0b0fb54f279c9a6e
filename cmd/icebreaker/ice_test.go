package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/icecli"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// testStdins maps a command's stdout to the reader its peer token comes
// from, so that two `icebreaker ice` commands run side by side in one test.
var testStdins sync.Map // io.Writer -> io.Reader

func init() {
	iceStdin = func(stdout io.Writer) io.Reader {
		if r, ok := testStdins.Load(stdout); ok {
			return r.(io.Reader)
		}
		return strings.NewReader("")
	}
}

// loopbackArgs keep every candidate on 127.0.0.1.
var loopbackArgs = []string{"--loopback", "--ip", "127.0.0.1"}

// iceResult is what one side of a run left behind.
type iceResult struct {
	code   int
	token  string // first line of stdout
	rest   string // the rest of stdout
	stderr string
}

// checkGoroutines fails t if fn leaves goroutines behind.
func checkGoroutines(t *testing.T, fn func()) {
	t.Helper()
	checkNoLeak(t, "ice", fn)
}

// runICEPair runs `icebreaker ice offer` and `icebreaker ice answer` with
// each one's stdout token fed to the other's stdin. It checks that they
// leave no goroutine behind, unless a server in the test starts goroutines
// of its own meanwhile (its cleanup checks those).
func runICEPair(t *testing.T, offerArgs, answerArgs []string) (offer, answer iceResult) {
	return runICEPairOpt(t, true, offerArgs, answerArgs)
}

func runICEPairOpt(t *testing.T, checkLeaks bool, offerArgs, answerArgs []string) (offer, answer iceResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	type side struct {
		args             []string
		res              *iceResult
		inR              *io.PipeReader
		inW              *io.PipeWriter
		outR             *io.PipeReader
		outW             *io.PipeWriter
		stderr           bytes.Buffer
		tokenOut, peerIn chan string
	}
	sides := []*side{
		{args: append([]string{"ice", "offer"}, offerArgs...), res: &offer},
		{args: append([]string{"ice", "answer"}, answerArgs...), res: &answer},
	}
	for _, s := range sides {
		s.inR, s.inW = io.Pipe()
		s.outR, s.outW = io.Pipe()
		testStdins.Store(io.Writer(s.outW), io.Reader(s.inR))
		defer testStdins.Delete(io.Writer(s.outW))
	}
	var wg sync.WaitGroup
	for i, s := range sides {
		peer := sides[1-i]
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.res.code = run(ctx, s.args, s.outW, &s.stderr)
			s.outW.Close()
			s.inR.Close() // unblocks a token write the command will not read
		}()
		go func() { // stdout: the token to the peer's stdin, then the rest
			defer wg.Done()
			br := bufio.NewReader(s.outR)
			line, err := br.ReadString('\n')
			s.res.token = strings.TrimSuffix(line, "\n")
			if err == nil {
				io.WriteString(peer.inW, line)
			}
			peer.inW.Close()
			rest, _ := io.ReadAll(br)
			s.res.rest = string(rest)
		}()
	}
	if checkLeaks {
		checkGoroutines(t, wg.Wait)
	} else {
		wg.Wait()
	}
	for _, s := range sides {
		s.res.stderr = s.stderr.String()
		if s.res.code != 0 {
			t.Errorf("%v: exit %d\nstderr:\n%s", s.args, s.res.code, s.res.stderr)
		}
	}
	return offer, answer
}

func TestICEPairJSON(t *testing.T) {
	args := append([]string{"--count", "3", "--json"}, loopbackArgs...)
	offer, answer := runICEPair(t, args, args)
	var sums [2]icecli.Summary
	for i, r := range []iceResult{offer, answer} {
		if !strings.HasPrefix(r.token, icecli.TokenPrefix) {
			t.Fatalf("first stdout line %q is not a token", r.token)
		}
		// The shape, decoded strictly, then into the typed summary.
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.rest), &raw); err != nil {
			t.Fatalf("summary %q: %v", r.rest, err)
		}
		for _, k := range []string{"role", "local", "remote", "connect_ms", "pings", "lost", "rtt_ms", "local_candidates", "remote_candidates"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("summary lacks %q: %s", k, r.rest)
			}
		}
		dec := json.NewDecoder(strings.NewReader(r.rest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sums[i]); err != nil {
			t.Fatalf("summary %q: %v", r.rest, err)
		}
	}
	o, a := sums[0], sums[1]
	if o.Role != "offer" || a.Role != "answer" {
		t.Errorf("roles %q, %q", o.Role, a.Role)
	}
	if o.Local != a.Remote || o.Remote != a.Local {
		t.Errorf("selected pairs not mirrored: offer %v -> %v, answer %v -> %v", o.Local, o.Remote, a.Local, a.Remote)
	}
	if o.Local.Type != "host" || o.Remote.Type != "host" || !strings.HasPrefix(o.Local.Addr, "127.0.0.1:") {
		t.Errorf("offer selected %v -> %v, want host 127.0.0.1 on both ends", o.Local, o.Remote)
	}
	for _, s := range sums {
		if s.Pings != 3 || s.Lost != 0 || len(s.RTTms) != 3 {
			t.Errorf("%s: pings %d lost %d rtts %v, want 3 answered", s.Role, s.Pings, s.Lost, s.RTTms)
		}
		if s.ConnectMS <= 0 {
			t.Errorf("%s: connect_ms %v", s.Role, s.ConnectMS)
		}
	}
	if strings.Join(o.LocalCandidates, "|") != strings.Join(a.RemoteCandidates, "|") {
		t.Errorf("offer's candidates %q, answer got %q", o.LocalCandidates, a.RemoteCandidates)
	}
}

// TestICEPortRange: --port-range puts both sides' host candidates, and
// so the selected pair, in the range.
func TestICEPortRange(t *testing.T) {
	p := testutil.FreePort(t)
	if p > 65000 {
		t.Skipf("free port %d is too near the top for a range above it", p)
	}
	rng := fmt.Sprintf("%d-%d", p, p+40)
	args := append([]string{"--count", "1", "--json", "--port-range", rng}, loopbackArgs...)
	offer, answer := runICEPair(t, args, args)
	for _, r := range []iceResult{offer, answer} {
		var sum icecli.Summary
		if err := json.Unmarshal([]byte(r.rest), &sum); err != nil {
			t.Fatalf("summary %q: %v", r.rest, err)
		}
		ap, err := netip.ParseAddrPort(sum.Local.Addr)
		if err != nil || ap.Port() < uint16(p) || ap.Port() > uint16(p+40) {
			t.Errorf("%s selected local %v, want a port in %s", sum.Role, sum.Local.Addr, rng)
		}
	}
}

func TestICEPairText(t *testing.T) {
	args := append([]string{"--count", "3"}, loopbackArgs...)
	offer, answer := runICEPair(t, args, args)
	var pairs [2]string
	for i, r := range []iceResult{offer, answer} {
		if r.rest != "" {
			t.Errorf("stdout after the token: %q", r.rest)
		}
		for _, want := range []string{"gathered 1 candidate: host 127.0.0.1:", "ping 1: ", "ping 2: ", "ping 3: ", "3 pings, 0 lost, rtt min/avg/max"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		_, after, ok := strings.Cut(r.stderr, "connected in ")
		if !ok {
			t.Fatalf("no 'connected in' line:\n%s", r.stderr)
		}
		line, _, _ := strings.Cut(after, "\n")
		_, pairs[i], _ = strings.Cut(line, ": ")
	}
	// "local host A <-> remote host B" on one side is mirrored on the other.
	ol, or, _ := strings.Cut(strings.TrimPrefix(pairs[0], "local "), " <-> remote ")
	al, ar, _ := strings.Cut(strings.TrimPrefix(pairs[1], "local "), " <-> remote ")
	if ol == "" || ol != ar || or != al {
		t.Errorf("pairs not mirrored: offer %q, answer %q", pairs[0], pairs[1])
	}
}

// runICEWithStdin runs one command with the given stdin.
func runICEWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	testStdins.Store(io.Writer(&out), io.Reader(strings.NewReader(stdin)))
	defer testStdins.Delete(io.Writer(&out))
	var code int
	checkGoroutines(t, func() {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		code = run(ctx, append([]string{"ice"}, args...), &out, &errb)
	})
	return code, out.String(), errb.String()
}

func TestICEBadToken(t *testing.T) {
	b64 := func(s string) string { return icecli.TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := icecli.Token{Role: "answer", Ufrag: "abcd", Pwd: "0123456789012345678901", Candidates: []string{"1 1 udp 2130706431 127.0.0.1 9 typ host"}}
	badCand := good
	badCand.Candidates = []string{"1 1 udp x 127.0.0.1 9 typ host"}
	noCand := good
	noCand.Candidates = nil
	for _, c := range []struct{ name, line, want string }{
		{"text", "hello there\n", "the peer's token is not an icebreaker ICE token"},
		{"base64", icecli.TokenPrefix + "!!!\n", "the peer's token is not an icebreaker ICE token (bad base64"},
		{"json", b64("[1]") + "\n", "the peer's token is not an icebreaker ICE token (bad content"},
		{"unknown field", b64(`{"r":"answer","x":1}`) + "\n", "the peer's token is not an icebreaker ICE token (bad content"},
		{"role", b64(`{"r":"boss","u":"abcd","p":"x","c":["a"]}`) + "\n", `(role "boss")`},
		{"candidate", icecli.EncodeToken(badCand) + "\n", "(candidate 1:"},
		{"no candidates", icecli.EncodeToken(noCand) + "\n", "(no candidates)"},
		{"same role", icecli.EncodeToken(good) + "\n", "the peer's token is also an answer"},
		{"empty", "", "no token on standard input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"offer"}, loopbackArgs...)
			if c.name == "same role" {
				args[0] = "answer"
			}
			code, out, errs := runICEWithStdin(t, c.line, args...)
			if code != 1 || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errs, c.want)
			}
			if !strings.HasPrefix(out, icecli.TokenPrefix) {
				t.Errorf("stdout %q: the token comes first anyway", out)
			}
		})
	}
}

func TestICETimeout(t *testing.T) {
	// A peer that never answers: a loopback socket nobody reads.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	peer := icecli.Token{Role: "answer", Ufrag: "abcd", Pwd: "0123456789012345678901",
		Candidates: []string{"1 1 udp 2130706431 " + strings.Replace(pc.LocalAddr().String(), ":", " ", 1) + " typ host"}}
	code, _, errs := runICEWithStdin(t, icecli.EncodeToken(peer)+"\n", append([]string{"offer", "--timeout", "300ms"}, loopbackArgs...)...)
	if code != 1 || !strings.Contains(errs, "ICE failed: no candidate pair worked after ") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestICEUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "missing offer or answer"},
		{[]string{"call"}, 2, `unknown ice command "call"`},
		{[]string{"offer", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"answer", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"offer", "--count", "0"}, 2, "--count must be 1-1000"},
		{[]string{"offer", "--timeout", "0s"}, 2, "--timeout must be positive"},
		{[]string{"offer", "-4", "-6"}, 2, "-4 and -6 exclude each other"},
		{[]string{"offer", "--ip", "nonsense"}, 2, "--ip:"},
		{[]string{"offer", "--stun", "host:0"}, 2, "--stun: bad port"},
		{[]string{"offer", "--turn", "http://x", "--turn-secret", "s"}, 2, "--turn: bad TURN URI"},
		{[]string{"offer", "--relay-only"}, 2, "--relay-only needs --turn"},
		{[]string{"offer", "--port-range", "5000-4000"}, 2, "--port-range:"},
		{[]string{"offer", "--no-host"}, 2, "--no-host leaves nothing to offer"},
		{[]string{"offer", "--turn-user", "u", "--turn-pass", "p"}, 2, "TURN credentials without --turn"},
		{[]string{"offer", "--turn", "turn:127.0.0.1"}, 2, "--turn needs --turn-user and --turn-pass, or --turn-secret"},
		{[]string{"offer", "--turn", "turn:127.0.0.1", "--turn-user", "u"}, 2, "--turn-user and --turn-pass go together"},
		{[]string{"offer", "--turn", "turn:127.0.0.1", "--turn-secret", "s", "--turn-user", "u", "--turn-pass", "p"}, 2, "--turn-secret excludes"},
	} {
		code, _, errs := runICEWithStdin(t, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
	code, out, _ := runICEWithStdin(t, "", "--help")
	if code != 0 || !strings.Contains(out, "usage: icebreaker ice offer|answer") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}

func TestICETokenRoundTrip(t *testing.T) {
	tok := icecli.Token{Role: "offer", Ufrag: "abcd", Pwd: "0123456789012345678901", Candidates: []string{
		"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ host",
		"candidate:2 1 UDP 1694498815 203.0.113.7 6000 typ srflx raddr 10.0.0.2 rport 5000",
		"candidate:3 1 UDP 2130706175 ::1 5001 typ host",
	}}
	got, err := icecli.DecodeToken("  " + icecli.EncodeToken(tok) + "\r\n")
	if err != nil {
		t.Fatal(err)
	}
	cands, err := peerCandidates(got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != tok.Role || got.Ufrag != tok.Ufrag || got.Pwd != tok.Pwd || len(cands) != 3 {
		t.Fatalf("got %+v, %d candidates", got, len(cands))
	}
	for i, c := range cands {
		if c.String() != tok.Candidates[i] {
			t.Errorf("candidate %d: %q, want %q", i, c.String(), tok.Candidates[i])
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	f.Add(icecli.EncodeToken(icecli.Token{Role: "offer", Ufrag: "abcd", Pwd: "0123456789012345678901", Candidates: []string{"1 1 udp 1 127.0.0.1 9 typ host"}}))
	f.Add(icecli.TokenPrefix + "e30")
	f.Add("hello")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := icecli.DecodeToken(s)
		if err != nil {
			return
		}
		cands, err := peerCandidates(tok)
		if err != nil {
			return
		}
		if len(cands) != len(tok.Candidates) || len(cands) == 0 {
			t.Fatalf("%d candidates from %d strings", len(cands), len(tok.Candidates))
		}
	})
}

// TestICEProcesses runs two icebreaker processes wired with OS pipes, each
// one's stdout into the other's stdin, as a shell user would with named
// pipes.
func TestICEProcesses(t *testing.T) {
	if role := os.Getenv("IB_TEST_ICE_CHILD"); role != "" {
		iceStdin = func(io.Writer) io.Reader { return os.Stdin }
		os.Args = append([]string{"icebreaker", "ice", role, "--count", "2", "--json"}, loopbackArgs...)
		main() // exits
	}
	if runtime.GOOS == "windows" {
		t.Skip("pipes between child processes: Unix only in this test")
	}
	// offer's stdout -> answer's stdin, answer's stdout -> offer's stdin.
	toAnswer, fromOffer, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	toOffer, fromAnswer, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	type child struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
	}
	var kids []*child
	for _, w := range []struct {
		role    string
		in, out *os.File
	}{{"offer", toOffer, fromOffer}, {"answer", toAnswer, fromAnswer}} {
		k := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestICEProcesses$")}
		k.cmd.Env = append(os.Environ(), "IB_TEST_ICE_CHILD="+w.role)
		k.cmd.Stdin, k.cmd.Stdout, k.cmd.Stderr = w.in, w.out, &k.stderr
		if err := k.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.cmd.Process.Kill(); k.cmd.Wait() })
		kids = append(kids, k)
	}
	for _, f := range []*os.File{toAnswer, fromOffer, toOffer, fromAnswer} {
		f.Close() // the children hold their ends
	}
	for _, k := range kids {
		timer := time.AfterFunc(30*time.Second, func() { k.cmd.Process.Kill() })
		err := k.cmd.Wait()
		timer.Stop()
		if err != nil {
			t.Errorf("%v: %v\nstderr:\n%s", k.cmd.Env[len(k.cmd.Env)-1], err, &k.stderr)
			continue
		}
		for _, want := range []string{"connected in ", "2 pings, 0 lost"} {
			if !strings.Contains(k.stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, &k.stderr)
			}
		}
	}
}

// TestICEPairRelay forces the relay: both sides offer only relayed
// candidates from our TURN server on loopback, which --allow-peer lets
// relay to loopback peers.
func TestICEPairRelay(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "alice:secret", "--allow-peer", "127.0.0.0/8")
	server := r.endpoint(t, "udp")
	args := []string{"--relay-only", "--turn", "turn:" + server.String(), "--turn-user", "alice", "--turn-pass", "secret",
		"--count", "2", "--json"}
	// The server starts goroutines at its first allocation.
	offer, answer := runICEPairOpt(t, false, args, args)
	var sums [2]icecli.Summary
	for i, r := range []iceResult{offer, answer} {
		if err := json.Unmarshal([]byte(r.rest), &sums[i]); err != nil {
			t.Fatalf("summary %q: %v\nstderr:\n%s", r.rest, err, r.stderr)
		}
		if s := sums[i]; s.Local.Type != "relay" || s.Remote.Type != "relay" || len(s.RTTms) != 2 {
			t.Errorf("%s: selected %v -> %v with %d rtts, want relay -> relay and 2", s.Role, s.Local, s.Remote, len(s.RTTms))
		}
		for _, c := range sums[i].LocalCandidates {
			if !strings.Contains(c, " typ relay") {
				t.Errorf("%s offered %q with --relay-only", sums[i].Role, c)
			}
		}
	}
	if sums[0].Local != sums[1].Remote || sums[0].Remote != sums[1].Local {
		t.Errorf("not mirrored: %+v / %+v", sums[0], sums[1])
	}
}
