package peerbench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// envGate turns the benchmark on; without it TestPeerThroughput skips, so
// that `go test ./...` stays fast and needs no root.
const envGate = "ICEBREAKER_BENCH_PEER"

// pollEvery is how often the receiver's directory is looked at.
const pollEvery = 2 * time.Millisecond

type benchConfig struct {
	size       int64
	runs       int
	envs       []string
	configs    []string
	icebreaker string // binaries
	ceiling    string
	runTimeout time.Duration
	report     string // file for the report; "" logs it
}

func envList(name, def string) []string {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		v = def
	}
	return strings.Fields(strings.ReplaceAll(v, ",", " "))
}

func loadConfig(t *testing.T) *benchConfig {
	t.Helper()
	cfg := &benchConfig{
		envs:       envList("PEERBENCH_ENVS", "loopback lab"),
		configs:    envList("PEERBENCH_CONFIGS", strings.Join(Configs, " ")),
		icebreaker: os.Getenv("PEERBENCH_ICEBREAKER"),
		ceiling:    os.Getenv("PEERBENCH_CEILING"),
		report:     os.Getenv("PEERBENCH_REPORT"),
		runTimeout: 120 * time.Second,
	}
	mb, err := strconv.Atoi(cmpOr(os.Getenv("PEERBENCH_MB"), "256"))
	if err != nil || mb < 1 || mb > 4096 {
		t.Fatalf("PEERBENCH_MB=%q: want 1-4096", os.Getenv("PEERBENCH_MB"))
	}
	cfg.size = int64(mb) << 20
	if cfg.runs, err = strconv.Atoi(cmpOr(os.Getenv("PEERBENCH_RUNS"), "2")); err != nil || cfg.runs < 1 || cfg.runs > 50 {
		t.Fatalf("PEERBENCH_RUNS=%q: want 1-50", os.Getenv("PEERBENCH_RUNS"))
	}
	if v := os.Getenv("PEERBENCH_RUN_TIMEOUT"); v != "" {
		if cfg.runTimeout, err = time.ParseDuration(v); err != nil || cfg.runTimeout <= 0 {
			t.Fatalf("PEERBENCH_RUN_TIMEOUT=%q: want a duration such as 120s", v)
		}
	}
	for _, e := range cfg.envs {
		if e != "loopback" && e != "lab" {
			t.Fatalf("PEERBENCH_ENVS: unknown %q (want loopback, lab)", e)
		}
	}
	for _, c := range cfg.configs {
		if !slices.Contains(Configs, c) {
			t.Fatalf("PEERBENCH_CONFIGS: unknown %q (want some of %s)", c, strings.Join(Configs, " "))
		}
	}
	if cfg.icebreaker == "" {
		cfg.icebreaker = natlab.BuildBinary(t, "github.com/icebreaker-net/icebreaker/cmd/icebreaker")
	}
	if cfg.ceiling == "" {
		cfg.ceiling = natlab.BuildBinary(t, "github.com/icebreaker-net/icebreaker/bench/peer/quicceiling")
	}
	return cfg
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestPeerThroughput is the benchmark (see run.sh and README.md): for each
// environment it starts the servers once, then runs every configuration
// PEERBENCH_RUNS times, interleaved (the order alternates from round to
// round, so that drift of a busy host hits them alike).
func TestPeerThroughput(t *testing.T) {
	if os.Getenv(envGate) != "1" {
		t.Skip("benchmark: run bench/peer/run.sh")
	}
	cfg := loadConfig(t)
	file := filepath.Join(t.TempDir(), "payload.bin")
	sum := writeRandom(t, file, cfg.size)

	var runs []Run
	loads := map[string][2]string{}
	for _, env := range cfg.envs {
		t.Run(env, func(t *testing.T) {
			start := loadavg()
			w := newWorld(t, env, cfg)
			for round := 1; round <= cfg.runs; round++ {
				order := slices.Clone(cfg.configs)
				if round%2 == 0 {
					slices.Reverse(order)
				}
				for _, c := range order {
					if t.Context().Err() != nil {
						return
					}
					r := w.transfer(t, c, round, file, cfg.size, sum)
					t.Log(r.Line())
					runs = append(runs, r)
				}
			}
			loads[env] = [2]string{start, loadavg()}
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "file: %d MiB of random bytes; %d run(s) per configuration and environment, interleaved\n", cfg.size>>20, cfg.runs)
	for _, env := range cfg.envs {
		l := loads[env]
		fmt.Fprintf(&b, "\n%s (load average %s at the start, %s at the end)\n", env, l[0], l[1])
		WriteReport(&b, env, cfg.configs, runs)
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

// writeRandom writes size random bytes to path and returns their SHA-256.
func writeRandom(t *testing.T, path string, size int64) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// world is one environment with its servers running: where the processes
// run and which addresses they use.
type world struct {
	env  string
	cfg  *benchConfig
	lab  *natlab.Lab // nil on loopback
	code int         // nameplate of the next code

	rendezvous string // our serve's mailbox (hands out STUN and TURN)
	mailbox    string // the reference mailbox server
	transit    string // the reference transit relay, host:port
	peerFlags  []string

	// quicceiling addresses: the receiver's local and public, the
	// sender's local and public.
	ceilRecvLocal, ceilRecvPublic, ceilSendLocal, ceilSendPublic string
}

// Where the lab's servers listen (in wan).
const (
	labTURNPort       = "3478"
	labRendezvousPort = "4000" // ours, on ServerIP1
	labMailboxPort    = "4000" // the reference one, on ServerIP2
	labTransitPort    = "4001" // on ServerIP1
	labCeilingPort    = 46000  // quicceiling on both lan hosts
	restSecret        = "peerbench-rest-secret"
)

func newWorld(t *testing.T, env string, cfg *benchConfig) *world {
	t.Helper()
	// Each run leaves an allocation until the peer deletes it; no
	// per-user quota may refuse the next.
	t.Setenv("ICEBREAKER_TURN_QUOTAS_ALLOCATIONS_PER_USER", "0")
	w := &world{env: env, cfg: cfg, code: 10}
	// No router answers port-mapping requests here: do not wait for one.
	w.peerFlags = []string{"--no-portmap"}
	ctx := t.Context()
	if env == "loopback" {
		turnPort, rdvPort := testutil.FreePort(t), testutil.FreePort(t)
		srv := w.start(t, "", cfg.icebreaker, "serve", "--listen", "127.0.0.1", "--port", strconv.Itoa(turnPort),
			"--user-db", "none", "--rest-secret", restSecret, "--rendezvous", "127.0.0.1:"+strconv.Itoa(rdvPort),
			"--transit-relay", "off", "--rendezvous-db", "none", "--allow-peer", "127.0.0.0/8", "--log-level", "warn")
		w.rendezvous = fmt.Sprintf("ws://127.0.0.1:%d/v1", rdvPort)
		if err := srv.WaitForOutput(ctx, w.rendezvous); err != nil {
			t.Fatal(err)
		}
		w.mailbox = refpeers.StartMailbox(t).URL
		w.transit = refpeers.StartTransitRelay(t).Addr
		w.peerFlags = append(w.peerFlags, "--loopback", "--ip", "127.0.0.1")
		a, b := testutil.FreePort(t), testutil.FreePort(t)
		w.ceilRecvLocal = fmt.Sprintf("127.0.0.1:%d", a)
		w.ceilRecvPublic = w.ceilRecvLocal
		w.ceilSendLocal = fmt.Sprintf("127.0.0.1:%d", b)
		w.ceilSendPublic = w.ceilSendLocal
		return w
	}

	// The lab: two endpoint-independent NATs, on which ICE finds a direct
	// pair; every server in wan.
	refpeers.RequirePythonModule(t, "wormhole_mailbox_server")
	refpeers.RequirePythonModule(t, "wormhole_transit_relay")
	w.lab = natlab.New(t, natlab.Options{A: natlab.EIM, B: natlab.EIM})
	s1, s2 := natlab.ServerIP1, natlab.ServerIP2
	srv := w.start(t, "wan", cfg.icebreaker, "serve", "--listen", s1, "--port", labTURNPort,
		"--user-db", "none", "--rest-secret", restSecret, "--rendezvous", s1+":"+labRendezvousPort,
		"--transit-relay", "off", "--rendezvous-db", "none", "--allow-peer", "203.0.113.0/24", "--log-level", "warn")
	w.rendezvous = "ws://" + s1 + ":" + labRendezvousPort + "/v1"
	if err := srv.WaitForOutput(ctx, w.rendezvous); err != nil {
		t.Fatal(err)
	}
	mb := w.start(t, "wan", refpeers.Python, "-m", "twisted", "wormhole-mailbox",
		"--channel-db="+filepath.Join(t.TempDir(), "relay.sqlite"), "--port=tcp:"+labMailboxPort+":interface="+s2)
	if err := mb.WaitForOutput(ctx, "starting on "+labMailboxPort); err != nil {
		t.Fatal(err)
	}
	w.mailbox = "ws://" + s2 + ":" + labMailboxPort + "/v1"
	w.start(t, "wan", refpeers.Python, "-m", "twisted", "transitrelay", "--port=tcp:"+labTransitPort+":interface="+s1)
	w.transit = s1 + ":" + labTransitPort
	// Wait until the relay accepts connections from lanA.
	probe := "import socket,time\nfor i in range(300):\n try:\n  socket.create_connection(('" + s1 + "'," + labTransitPort +
		"),1).close(); break\n except OSError: time.sleep(0.05)\nelse: raise SystemExit('no transit relay')"
	if out, err := w.lab.Run(ctx, "lanA", refpeers.Python, "-c", probe); err != nil {
		t.Fatalf("transit relay: %v\n%s", err, out)
	}
	port := strconv.Itoa(labCeilingPort)
	w.ceilRecvLocal, w.ceilRecvPublic = natlab.LanBIP+":"+port, natlab.NatBPublic+":"+port
	w.ceilSendLocal, w.ceilSendPublic = natlab.LanAIP+":"+port, natlab.NatAPublic+":"+port
	return w
}

// start starts a process on host ("" on loopback, else a lab host) for the
// rest of the environment's test.
func (w *world) start(t *testing.T, host, bin string, args ...string) *testutil.Process {
	t.Helper()
	return w.startCtx(t, t.Context(), host, bin, args...)
}

func (w *world) startCtx(t *testing.T, ctx context.Context, host, bin string, args ...string) *testutil.Process {
	t.Helper()
	if w.lab == nil {
		return testutil.Start(t, testutil.Command(ctx, bin, args...))
	}
	return w.lab.Start(ctx, host, bin, args...).Process
}

// transfer runs one configuration once: it starts the sending side, waits
// until it is ready (it has its code), starts the receiving side with the
// code (from then on both sides have it), watches the receiver's
// directory for the first and the last byte, and checks the result.
func (w *world) transfer(t *testing.T, config string, round int, file string, size int64, sum [32]byte) Run {
	r := Run{Env: w.env, Config: config, Round: round, Size: size, Load: loadavg()}
	ctx, cancel := context.WithTimeout(t.Context(), w.cfg.runTimeout)
	defer cancel() // kills what still runs
	if w.lab != nil {
		w.lab.FlushConntrack()
	}
	dir := t.TempDir()
	w.code++
	code := fmt.Sprintf("%d-peer-bench", w.code)
	name := filepath.Base(file)
	fail := func(format string, a ...any) Run {
		r.Err = fmt.Sprintf(format, a...)
		return r
	}

	var sender, receiver *testutil.Process
	var recvArgs []string
	recvBin := ""
	switch config {
	case IceDirect, IceRelay:
		common := append([]string{"--rendezvous", w.rendezvous, "--json"}, w.peerFlags...)
		args := append([]string{"send", file, "--code", code}, common...)
		if config == IceRelay {
			args = append(args, "--relay-only")
		}
		sender = w.startCtx(t, ctx, "lanA", w.cfg.icebreaker, args...)
		if err := sender.WaitForOutput(ctx, `"event":"code"`); err != nil {
			return fail("sender: %v", err)
		}
		recvBin = w.cfg.icebreaker
		recvArgs = append([]string{"receive", "--accept-file", "-o", dir, code}, common...)
	case WormholeRelay, WormholeDirect:
		common := []string{"--relay-url", w.mailbox, "--transit-helper", "tcp:" + w.transit}
		sargs := append(slices.Clone(common), "send", "--hide-progress", "--code", code)
		rargs := append(slices.Clone(common), "receive", "--hide-progress", "--accept-file", "--output-file", filepath.Join(dir, name))
		if config == WormholeRelay {
			sargs = append(sargs, "--no-listen")
			rargs = append(rargs, "--no-listen")
		}
		sender = w.startCtx(t, ctx, "lanA", "/usr/bin/wormhole", append(sargs, file)...)
		if err := sender.WaitForOutput(ctx, "Wormhole code is"); err != nil {
			return fail("sender: %v", err)
		}
		recvBin = "/usr/bin/wormhole"
		recvArgs = append(rargs, code)
	case QUICCeiling:
		// The receiving side listens; the sending side dials.
		receiver = w.startCtx(t, ctx, "lanB", w.cfg.ceiling, "-role", "server",
			"-local", w.ceilRecvLocal, "-peer", w.ceilSendPublic, "-out", filepath.Join(dir, name))
		recvBin = w.cfg.ceiling
		recvArgs = []string{"-role", "client", "-local", w.ceilSendLocal, "-peer", w.ceilRecvPublic, "-file", file}
	}

	start := time.Now()
	if config == QUICCeiling {
		sender = w.startCtx(t, ctx, "lanA", recvBin, recvArgs...)
	} else {
		receiver = w.startCtx(t, ctx, "lanB", recvBin, recvArgs...)
	}
	first, full, err := watch(ctx, dir, size, sender, receiver)
	if err != nil {
		return fail("%v; sender: %s; receiver: %s", err, brief(sender.Output()), brief(receiver.Output()))
	}
	r.TTFB, r.Total = first.Sub(start), full.Sub(start)
	errS, errR := sender.Wait(), receiver.Wait()
	if errS != nil || errR != nil {
		return fail("sender: %v, receiver: %v; sender: %s; receiver: %s", errS, errR, brief(sender.Output()), brief(receiver.Output()))
	}
	got, err := fileSum(filepath.Join(dir, name))
	if err != nil || got != sum {
		return fail("the received file differs (%v)", err)
	}
	r.Path = pathOf(config, receiver.Output())
	r.OK = true
	return r
}

// watch polls dir until its files hold a first byte and then size bytes,
// and returns when each was first seen. It fails when a process exits
// with an error before the end, or when ctx is done.
func watch(ctx context.Context, dir string, size int64, procs ...*testutil.Process) (first, full time.Time, err error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		n := dirBytes(dir)
		now := time.Now()
		if n > 0 && first.IsZero() {
			first = now
		}
		if n >= size {
			return first, now, nil
		}
		for _, p := range procs {
			if p.Exited() {
				if werr := p.Wait(); werr != nil {
					return first, full, fmt.Errorf("%s exited: %v after %d bytes", filepath.Base(strings.Fields(p.String())[0]), werr, n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return first, full, fmt.Errorf("%d of %d bytes: %w", n, size, ctx.Err())
		case <-tick.C:
		}
	}
}

// dirBytes is the total size of the regular files in dir: the receivers
// write a temporary file that they rename once complete.
func dirBytes(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

func fileSum(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

// pathOf says which path the receiver used: icebreaker's done event
// ("direct host>srflx"), the connection that wormhole's receiver names
// ("Receiving (->relay:tcp:...)": relay, else direct), or udp for the
// ceiling.
func pathOf(config, out string) string {
	switch config {
	case IceDirect, IceRelay:
		for line := range strings.Lines(out) {
			var ev struct {
				Event, Path, LocalType, RemoteType string
			}
			ev.LocalType, ev.RemoteType = "?", "?"
			if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &struct {
				Event      *string `json:"event"`
				Path       *string `json:"path"`
				LocalType  *string `json:"local_type"`
				RemoteType *string `json:"remote_type"`
			}{&ev.Event, &ev.Path, &ev.LocalType, &ev.RemoteType}) == nil && ev.Event == "done" {
				return ev.Path + " " + ev.LocalType + ">" + ev.RemoteType
			}
		}
		return "?"
	case WormholeRelay, WormholeDirect:
		for line := range strings.Lines(out) {
			if _, rest, ok := strings.Cut(line, "Receiving ("); ok {
				if strings.Contains(rest, "relay") {
					return "relay"
				}
				return "direct"
			}
		}
		return "?"
	}
	return "udp"
}

// brief condenses a process's output for an error message: its last 400
// bytes on one line.
func brief(out string) string {
	out = strings.Join(strings.Fields(out), " ")
	if len(out) > 400 {
		out = "..." + out[len(out)-400:]
	}
	return out
}
