// Command allocload measures a TURN server on loopback (RFC 8656,
// https://www.rfc-editor.org/rfc/rfc8656) in two ways:
//
//   - -mode rate: authenticated allocations per second. Every allocation
//     needs its own 5-tuple, so the tool opens a pool of client sockets and
//     allocates on each (Allocate, 401, Allocate with credentials) with
//     -inflight operations in flight, counting completed authenticated
//     allocations. When the pool is used up it deletes them all (Refresh
//     with LIFETIME 0, not measured) and starts again, until -duration of
//     allocating has been measured. The rate counts allocation time only.
//   - -mode mem: memory per allocation. It reads the server's VmRSS from
//     /proc/PID/status, makes -sockets idle allocations, waits -settle, reads
//     VmRSS again and reports the difference per allocation; then deletes
//     them.
//
// One goroutine drives every socket through epoll (package turnload), so
// the generator spends a write and a read system call per message and no
// scheduler work. It reports its own CPU time for the measured phases:
// near one core means the generator, not the server, set the pace.
//
// It refuses any server or client address that is not loopback. Runs are
// bounded: at most 60 s of measurement, 50 allocate/delete cycles and 20,000
// sockets.
//
// Usage:
//
//	allocload -server 127.0.0.1:3478 -user u:p -mode rate [-inflight 32] [-duration 5s]
//	allocload -server 127.0.0.1:3478 -user u:p -mode mem -server-pid PID [-sockets 10000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
)

// Bounds on the flags.
const (
	maxDuration = 60 * time.Second
	maxSockets  = 20000
	maxInflight = 4096
	maxCycles   = 50
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "allocload: %v\n", err)
		return 2
	}
	stopProfile, err := turnload.StartCPUProfile(cfg.cpuProfile)
	if err != nil {
		fmt.Fprintf(stderr, "allocload: %v\n", err)
		return 1
	}
	defer stopProfile()
	var line string
	switch cfg.mode {
	case "rate":
		line, err = runRate(ctx, cfg)
	case "mem":
		line, err = runMem(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "allocload: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}

// config is the validated command line.
type config struct {
	server     netip.AddrPort
	clientIP   netip.Addr
	creds      turnload.Creds
	mode       string
	sockets    int
	inflight   int
	duration   time.Duration
	serverPID  int
	settle     time.Duration
	label      string
	verbose    io.Writer // progress lines, or nil
	cpuProfile string
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var server, client, user string
	fs := flag.NewFlagSet("allocload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&server, "server", "", "TURN server `address`, a loopback IP and port")
	fs.StringVar(&client, "client-ip", "", "loopback `IP` the client sockets bind to; default 127.0.0.2 for an IPv4 server (so that client ports never compete with relay ports on 127.0.0.1), ::1 for IPv6")
	fs.StringVar(&user, "user", "", "long-term credentials `NAME:PASSWORD`")
	fs.StringVar(&c.mode, "mode", "rate", "rate: allocations per second; mem: RSS per idle allocation")
	fs.IntVar(&c.sockets, "sockets", 0, "client sockets, one allocation each; default 8000 for rate, 10000 for mem")
	fs.IntVar(&c.inflight, "inflight", 32, "operations in flight")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "rate: allocating time to measure (at most 60s)")
	fs.IntVar(&c.serverPID, "server-pid", 0, "`PID` of the server process: mem reads its VmRSS (required), both report the cores it used")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "mem: wait after the last allocation before reading VmRSS")
	fs.StringVar(&c.label, "label", "", "name echoed in the output (for scripts)")
	v := fs.Bool("v", false, "print progress to stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the generator's CPU profile to `FILE`")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *v {
		c.verbose = stderr
	}
	var err error
	if c.server, err = loopback.Target(server); err != nil {
		return c, fmt.Errorf("-server: %w", err)
	}
	if client == "" {
		client = "127.0.0.2"
		if c.server.Addr().Is6() {
			client = "::1"
		}
	}
	if c.clientIP, err = loopback.IP(client); err != nil {
		return c, fmt.Errorf("-client-ip: %w", err)
	}
	if c.clientIP.Is4() != c.server.Addr().Is4() {
		return c, errors.New("-client-ip and -server must be of one address family")
	}
	if c.creds, err = turnload.ParseCreds(user); err != nil {
		return c, err
	}
	if c.sockets == 0 {
		c.sockets = map[string]int{"rate": 8000, "mem": 10000}[c.mode]
	}
	switch {
	case c.mode != "rate" && c.mode != "mem":
		return c, fmt.Errorf("-mode %q: want rate or mem", c.mode)
	case c.sockets < 1 || c.sockets > maxSockets:
		return c, fmt.Errorf("-sockets %d: want 1 to %d", c.sockets, maxSockets)
	case c.inflight < 1 || c.inflight > maxInflight:
		return c, fmt.Errorf("-inflight %d: want 1 to %d", c.inflight, maxInflight)
	case c.duration < 100*time.Millisecond || c.duration > maxDuration:
		return c, fmt.Errorf("-duration %v: want 100ms to %v", c.duration, maxDuration)
	case c.settle < 0 || c.settle > time.Minute:
		return c, fmt.Errorf("-settle %v: want 0 to 1m", c.settle)
	case c.mode == "mem" && c.serverPID <= 0:
		return c, errors.New("-mode mem needs -server-pid")
	}
	return c, nil
}

func (c *config) engine() (*turnload.Engine, error) {
	return turnload.NewEngine(turnload.EngineConfig{Server: c.server, ClientIP: c.clientIP, Creds: c.creds}, c.sockets)
}

// codes formats error response counts as "486:3,508:1".
func codes(m map[int]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%d:%d", c, n))
	}
	return strings.Join(parts, ",")
}

// deleteAll deletes every allocation the engine holds, a window of 256 at a
// time, and returns how many it deleted, how many it could not, and then
// an error that says how those failed.
func deleteAll(e *turnload.Engine) (deleted, left int, err error) {
	ids := e.Allocated(nil)
	r := e.Run(ids, turnload.OpDelete, 256, time.Now().Add(time.Minute))
	if left = len(e.Allocated(ids[:0])); left > 0 {
		err = fmt.Errorf("%d allocations could not be deleted (errors %s, timeouts %d, not started %d)",
			left, codes(r.Codes), r.TimedOut, r.Unstarted)
	}
	return r.Done, left, err
}
