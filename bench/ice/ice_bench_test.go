package icebench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// envGate turns the benchmark on; without it TestICEConnectTime skips, so
// that `go test ./...` stays fast and needs no root.
const envGate = "ICEBREAKER_BENCH_ICE"

// The TURN credentials both servers get and both agents use.
const (
	turnUser  = "icebench"
	turnPass  = "icebench-pass"
	turnRealm = "icebench"
)

// serverAddr is where the STUN/TURN server listens, in the lab's wan.
var serverAddr = natlab.ServerIP1 + ":3478"

// benchConfig is read from the environment (run.sh sets it).
type benchConfig struct {
	runs, warmup int
	cases        []string
	servers      []string            // "icebreaker", "coturn"
	agents       []string            // AgentIcebreaker, AgentPion
	bins         map[string][]string // agent name -> binary and the words before offer|answer
	icebreaker   string              // the icebreaker binary (server, readiness probe)
	runTimeout   time.Duration       // one attempt, gathering included
	report       string              // file for the report; "" logs it
	notes        []string            // said in the report (a skipped agent, say)
}

func envList(name, def string) []string {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		v = def
	}
	return strings.Fields(strings.ReplaceAll(v, ",", " "))
}

func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want a whole number %d-%d", name, v, lo, hi)
	}
	return n
}

func loadConfig(t *testing.T) *benchConfig {
	t.Helper()
	cfg := &benchConfig{
		runs:    envInt(t, "ICEBENCH_RUNS", 20, 1, 1000),
		warmup:  envInt(t, "ICEBENCH_WARMUP", 1, 0, 100),
		cases:   envList("ICEBENCH_CASES", "direct relay"),
		servers: envList("ICEBENCH_SERVERS", "icebreaker"),
		agents:  envList("ICEBENCH_AGENTS", AgentIcebreaker+" "+AgentPion),
		bins:    map[string][]string{},
		report:  os.Getenv("ICEBENCH_REPORT"),
	}
	cfg.runTimeout = 30 * time.Second
	if v := os.Getenv("ICEBENCH_RUN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("ICEBENCH_RUN_TIMEOUT=%q: want a positive duration such as 30s", v)
		}
		cfg.runTimeout = d
	}
	for _, c := range cfg.cases {
		if _, ok := Cases[c]; !ok {
			t.Fatalf("ICEBENCH_CASES: unknown case %q (want direct, relay)", c)
		}
	}
	for _, s := range cfg.servers {
		if s != "icebreaker" && s != "coturn" {
			t.Fatalf("ICEBENCH_SERVERS: unknown server %q (want icebreaker, coturn)", s)
		}
	}
	if len(cfg.cases) == 0 || len(cfg.servers) == 0 || len(cfg.agents) == 0 {
		t.Fatal("ICEBENCH_CASES, ICEBENCH_SERVERS and ICEBENCH_AGENTS must not be empty")
	}

	cfg.icebreaker = os.Getenv("ICEBENCH_ICEBREAKER")
	if cfg.icebreaker == "" {
		cfg.icebreaker = natlab.BuildBinary(t, "github.com/icebreaker-net/icebreaker/cmd/icebreaker")
	}
	var agents []string
	for _, a := range cfg.agents {
		switch a {
		case AgentIcebreaker:
			cfg.bins[a] = []string{cfg.icebreaker, "ice"}
		case AgentPion:
			p := os.Getenv("ICEBENCH_PIONICE")
			if p == "" {
				cfg.notes = append(cfg.notes, "pion skipped: no pionice binary (ICEBENCH_PIONICE is empty; run.sh builds it from test/interop/cmd/pionice)")
				continue
			}
			if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				cfg.notes = append(cfg.notes, fmt.Sprintf("pion skipped: ICEBENCH_PIONICE=%s is not an executable file", p))
				continue
			}
			cfg.bins[a] = []string{p}
		default:
			t.Fatalf("ICEBENCH_AGENTS: unknown agent %q (want %s, %s)", a, AgentIcebreaker, AgentPion)
		}
		agents = append(agents, a)
	}
	if len(agents) == 0 {
		t.Fatalf("no agent left to measure: %s", strings.Join(cfg.notes, "; "))
	}
	cfg.agents = agents
	return cfg
}

// TestICEConnectTime is the benchmark (see run.sh and README.md). For each
// server and case it builds one NAT lab and starts the server in its wan;
// then, run by run, it starts a fresh pair of agents of each kind in turn
// (the order alternates from run to run, so that drift of the host hits
// both kinds alike), with the conntrack tables of both NATs flushed before
// every pair.
func TestICEConnectTime(t *testing.T) {
	if os.Getenv(envGate) != "1" {
		t.Skip("benchmark: run bench/ice/run.sh")
	}
	cfg := loadConfig(t)
	var runs []Run
	for _, srv := range cfg.servers {
		for _, cn := range cfg.cases {
			t.Run(srv+"/"+cn, func(t *testing.T) {
				runs = append(runs, benchCase(t, cfg, srv, Cases[cn])...)
			})
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "time to connected = the later of the two sides' connect_ms (each from reading the peer's token to Dial/Accept returning)\n")
	fmt.Fprintf(&b, "runs: %d per agent and case, after %d warm-up run(s) per agent that are not counted\n", cfg.runs, cfg.warmup)
	for _, n := range cfg.notes {
		fmt.Fprintf(&b, "NOTE: %s\n", n)
	}
	for _, srv := range cfg.servers {
		fmt.Fprintf(&b, "\nSTUN/TURN server: %s on %s (both agents: --stun %s --turn turn:%s)\n", srv, serverAddr, serverAddr, serverAddr)
		WriteReport(&b, srv, cfg.cases, cfg.agents, runs)
	}
	fmt.Fprintf(&b, "\nruns:\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "  %s\n", r.Line())
	}
	if cfg.report == "" {
		t.Log("\n" + b.String())
		return
	}
	if err := os.WriteFile(cfg.report, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// benchCase measures one case against one server.
func benchCase(t *testing.T, cfg *benchConfig, server string, c Case) []Run {
	lab := natlab.New(t, natlab.Options{A: natlab.Mode(c.A), B: natlab.Mode(c.B), PortMapA: natlab.PortMapOptions{Enable: c.PortMap}})
	ctx := t.Context()
	startServer(t, ctx, lab, cfg, server)
	if c.PortMap {
		lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
	}

	var runs []Run
	for i := range cfg.warmup + cfg.runs {
		order := slices.Clone(cfg.agents)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, a := range order {
			if ctx.Err() != nil {
				return runs
			}
			lab.FlushConntrack()
			r := connectOnce(t, ctx, lab, cfg.bins[a], c, cfg.runTimeout)
			r.Server, r.Case, r.Agent = server, c.Name, a
			r.Warmup = i < cfg.warmup
			r.Index = i + 1
			if !r.Warmup {
				r.Index -= cfg.warmup
			}
			t.Log(r.Line())
			runs = append(runs, r)
		}
	}
	return runs
}

// startServer starts the STUN/TURN server in the wan and waits until it
// answers a Binding request from lanA.
func startServer(t *testing.T, ctx context.Context, lab *natlab.Lab, cfg *benchConfig, server string) {
	t.Helper()
	var srv *natlab.Proc
	switch server {
	case "icebreaker":
		// Every attempt leaves allocations behind until they expire or
		// the agent deletes them; no per-user quota may refuse the next.
		t.Setenv("ICEBREAKER_TURN_QUOTAS_ALLOCATIONS_PER_USER", "0")
		srv = lab.Start(ctx, "wan", cfg.icebreaker, "serve", "--rendezvous", "off", "--listen", natlab.ServerIP1, "--port", "3478",
			"--user-db", "none", "--user", turnUser+":"+turnPass, "--realm", turnRealm,
			// The lab's "public" addresses are TEST-NET-3, which the
			// default policy refuses as a relay peer.
			"--allow-peer", "203.0.113.0/24", "--log-level", "warn")
	case "coturn":
		bin := testutil.RequireBinary(t, "turnserver") // coturn
		dir := t.TempDir()
		// coturn 4.6 refuses no peer in 203.0.113.0/24 unless told to
		// (--denied-peer-ip); it refuses loopback and multicast peers.
		srv = lab.Start(ctx, "wan", bin, "-n", "--no-cli", "--no-tls", "--no-dtls",
			"--listening-ip", natlab.ServerIP1, "--relay-ip", natlab.ServerIP1, "-p", "3478",
			"--lt-cred-mech", "--user="+turnUser+":"+turnPass, "--realm="+turnRealm,
			"--user-quota=0", "--total-quota=0",
			"--log-file", "stdout", "--simple-log",
			"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb"))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		out, err := lab.Run(rctx, "lanA", cfg.icebreaker, "stun", "--timeout", "1s", serverAddr)
		cancel()
		if err == nil {
			return
		}
		if srv.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s server on %s did not answer: %v\n%s\nserver output:\n%s", server, serverAddr, err, out, srv.Output())
		}
	}
}

// agentArgs are the same for both binaries (the shared CLI contract) after
// the command words of cmd ("icebreaker ice" or "pionice").
// With ICEBENCH_VERBOSE=1 the agents also get -v (their own progress
// log), which costs them a little time.
func agentArgs(cmd []string, role string) []string {
	args := append(slices.Clone(cmd[1:]), role, "--stun", serverAddr, "--turn", "turn:"+serverAddr,
		"--turn-user", turnUser, "--turn-pass", turnPass,
		"--count", "1", "--timeout", "10s", "--json")
	if os.Getenv("ICEBENCH_VERBOSE") == "1" {
		args = append(args, "-v")
	}
	return args
}

// summary is the part of an agent's --json line the benchmark reads.
type summary struct {
	Role  string `json:"role"`
	Local struct {
		Type string `json:"type"`
		Addr string `json:"addr"`
	} `json:"local"`
	Remote struct {
		Type string `json:"type"`
		Addr string `json:"addr"`
	} `json:"remote"`
	ConnectMS float64 `json:"connect_ms"`
	Pings     int     `json:"pings"`
	Lost      int     `json:"lost"`
}

// connectOnce starts an offer agent in lanA and an answer agent in lanB,
// waits for both tokens, hands each token to the other side (the answer
// first, then the offer, microseconds apart) and waits for both to exit.
func connectOnce(t *testing.T, ctx context.Context, lab *natlab.Lab, cmd []string, c Case, timeout time.Duration) Run {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel() // kills whatever is still running
	offer := lab.StartWithStdin(rctx, "lanA", cmd[0], agentArgs(cmd, "offer")...)
	answer := lab.StartWithStdin(rctx, "lanB", cmd[0], agentArgs(cmd, "answer")...)

	var r Run
	fail := func(format string, a ...any) Run {
		r.Err = fmt.Sprintf(format, a...)
		return r
	}
	offerTok, err := waitLine(rctx, offer, "ib1:")
	if err != nil {
		return fail("offer token: %v", err)
	}
	answerTok, err := waitLine(rctx, answer, "ib1:")
	if err != nil {
		return fail("answer token: %v", err)
	}
	if _, err := answer.Stdin().Write([]byte(offerTok + "\n")); err != nil {
		return fail("writing to the answer agent: %v", err)
	}
	if _, err := offer.Stdin().Write([]byte(answerTok + "\n")); err != nil {
		return fail("writing to the offer agent: %v", err)
	}
	errO, errA := offer.Wait(), answer.Wait()
	if os.Getenv("ICEBENCH_VERBOSE") == "1" {
		t.Logf("offer output:\n%s\nanswer output:\n%s", offer.Output(), answer.Output())
	}

	so, errSO := parseSummary(offer.Output())
	sa, errSA := parseSummary(answer.Output())
	if errSO == nil {
		r.OfferMS = so.ConnectMS
		r.Path = so.Local.Type + ">" + so.Remote.Type
		r.Pair = so.Local.Addr + ">" + so.Remote.Addr
	}
	if errSA == nil {
		r.AnswerMS = sa.ConnectMS
	}
	switch {
	case errO != nil:
		return fail("offer: %v: %s", errO, brief(offer.Output()))
	case errA != nil:
		return fail("answer: %v: %s", errA, brief(answer.Output()))
	case errSO != nil:
		return fail("offer: %v", errSO)
	case errSA != nil:
		return fail("answer: %v", errSA)
	}
	relayed := so.Local.Type == "relay" || so.Remote.Type == "relay"
	if relayed != c.Relay {
		return fail("selected pair %s, want a %s path", r.Path, map[bool]string{true: "relayed", false: "direct"}[c.Relay])
	}
	r.OK = true
	return r
}

// waitLine waits until p has written a whole line starting with prefix and
// returns it without the newline.
func waitLine(ctx context.Context, p *natlab.Proc, prefix string) (string, error) {
	var found string
	err := p.WaitFor(ctx, "a line starting with "+prefix, func(out string) bool {
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, prefix) && strings.HasSuffix(line, "\n") {
				found = strings.TrimRight(line, "\r\n")
				return true
			}
		}
		return false
	})
	return found, err
}

// parseSummary finds the --json line in an agent's output.
func parseSummary(out string) (summary, error) {
	var s summary
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return s, fmt.Errorf("bad --json line %q: %v", strings.TrimSpace(line), err)
		}
		if s.Local.Type == "" || s.Remote.Type == "" {
			return s, fmt.Errorf("--json line without the selected pair: %q", strings.TrimSpace(line))
		}
		return s, nil
	}
	return s, fmt.Errorf("no --json summary line")
}

// brief condenses an agent's output for an error message: its lines other
// than the token and the summary, joined, at most 400 bytes.
func brief(out string) string {
	var keep []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "ib1:") && !strings.HasPrefix(line, "{") {
			keep = append(keep, line)
		}
	}
	s := strings.Join(keep, " | ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
