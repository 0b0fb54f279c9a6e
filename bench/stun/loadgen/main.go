// Command loadgen measures how many STUN Binding requests (RFC 8489,
// Section 3, https://www.rfc-editor.org/rfc/rfc8489) a server on loopback
// answers per second.
//
// It keeps a fixed window of requests in flight on each of several
// connected UDP sockets and sends and receives in batches (sendmmsg and
// recvmmsg through golang.org/x/net), so that the generator costs the
// machine fewer system calls per request than the server it measures. A
// response counts only if it is a Binding success response whose
// transaction ID matches a request still in flight. A request unanswered
// after -timeout is counted lost and replaced by a new one in its slot, so
// the pipeline never drains.
//
// It refuses any target that is not a loopback address: it is a benchmark
// tool, not a flooder. A run lasts -warmup plus -duration (at most 60 s)
// and sends at most -max-requests requests.
//
// Usage:
//
//	loadgen -target 127.0.0.1:3478 [-sockets 4] [-inflight 32] [-duration 10s] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
)

// Limits on the flags: the run stays bounded in time and in load.
const (
	maxDuration = 60 * time.Second
	maxWarmup   = 10 * time.Second
	maxWait     = 30 * time.Second
	maxSockets  = 64
	maxInflight = 4096
	maxBatch    = 1024
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain parses args, runs the load and prints the result. It returns the
// exit status: 0 on success, 1 when the run failed or got no answer, 2 on
// a bad command line.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
	} else {
		fmt.Fprintln(stdout, res.String())
	}
	if res.Received == 0 {
		fmt.Fprintln(stderr, "loadgen: no request was answered during the measurement")
		return 1
	}
	return 0
}

// config is the validated command line.
type config struct {
	target      netip.AddrPort
	sockets     int
	inflight    int
	batch       int
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	wait        time.Duration
	maxRequests int64
	label       string
	json        bool
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var target string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&target, "target", "", "server `address`, a loopback IP and port (127.0.0.1:3478 or [::1]:3478)")
	fs.IntVar(&c.sockets, "sockets", 4, "UDP sockets (client ports) to send from")
	fs.IntVar(&c.inflight, "inflight", 32, "requests kept in flight per socket")
	fs.IntVar(&c.batch, "batch", 64, "datagrams per sendmmsg/recvmmsg call")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measurement time (at most 60s)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "load before measuring, not counted (at most 10s)")
	fs.DurationVar(&c.timeout, "timeout", 200*time.Millisecond, "time after which an unanswered request is lost and replaced")
	fs.DurationVar(&c.wait, "wait", 5*time.Second, "how long to wait for the server's first answer before the run (0: do not wait)")
	fs.Int64Var(&c.maxRequests, "max-requests", 100_000_000, "stop after sending this many requests")
	fs.StringVar(&c.label, "label", "", "name echoed in the output (for scripts)")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.target, err = loopback.Target(target); err != nil {
		return c, fmt.Errorf("-target: %w", err)
	}
	switch {
	case c.sockets < 1 || c.sockets > maxSockets:
		return c, fmt.Errorf("-sockets %d: want 1 to %d", c.sockets, maxSockets)
	case c.inflight < 1 || c.inflight > maxInflight:
		return c, fmt.Errorf("-inflight %d: want 1 to %d", c.inflight, maxInflight)
	case c.batch < 1 || c.batch > maxBatch:
		return c, fmt.Errorf("-batch %d: want 1 to %d", c.batch, maxBatch)
	case c.duration <= 0 || c.duration > maxDuration:
		return c, fmt.Errorf("-duration %v: want more than 0 and at most %v", c.duration, maxDuration)
	case c.warmup < 0 || c.warmup > maxWarmup:
		return c, fmt.Errorf("-warmup %v: want 0 to %v", c.warmup, maxWarmup)
	case c.timeout < time.Millisecond || c.timeout > 10*time.Second:
		return c, fmt.Errorf("-timeout %v: want 1ms to 10s", c.timeout)
	case c.wait < 0 || c.wait > maxWait:
		return c, fmt.Errorf("-wait %v: want 0 to %v", c.wait, maxWait)
	case c.maxRequests < 1:
		return c, fmt.Errorf("-max-requests %d: want at least 1", c.maxRequests)
	}
	return c, nil
}

// result is what one run measured, after the warmup.
type result struct {
	Label      string  `json:"label,omitempty"`
	Target     string  `json:"target"`
	Sockets    int     `json:"sockets"`
	Inflight   int     `json:"inflight_per_socket"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"answered_per_second"`
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Lost       uint64  `json:"lost"`
	Stray      uint64  `json:"stray"`
	SendErrors uint64  `json:"send_errors"`
	RecvErrors uint64  `json:"recv_errors"`
	// CPUSeconds is the user and system CPU time this process used from
	// its start to the end of the run, warmup included: with the server's
	// and the host's, it tells whether something else competed for the
	// cores.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Truncated is true when the run ended before -duration: the request
	// budget ran out or the process was interrupted.
	Truncated bool `json:"truncated,omitempty"`
}

func (r result) String() string {
	s := ""
	if r.Label != "" {
		s = "label=" + r.Label + " "
	}
	s += fmt.Sprintf("target=%s sockets=%d inflight=%d seconds=%.2f rate=%.0f req/s sent=%d received=%d lost=%d stray=%d send_errors=%d recv_errors=%d cpu=%.2fs",
		r.Target, r.Sockets, r.Inflight, r.Seconds, r.Rate, r.Sent, r.Received, r.Lost, r.Stray, r.SendErrors, r.RecvErrors, r.CPUSeconds)
	if r.Truncated {
		s += " truncated=true"
	}
	return s
}
