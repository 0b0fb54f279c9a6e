// Command relayload measures how many TURN ChannelData packets per second
// (RFC 8656, Section 12, https://www.rfc-editor.org/rfc/rfc8656) a server on
// loopback relays at a fixed offered rate, and how many it loses.
//
// Two setups:
//
//   - -mode peer (the default): client A allocates relayed address RA,
//     installs a permission for a plain UDP socket (the peer) and binds a
//     channel to it. A sends ChannelData; the server relays each packet
//     once, from RA to the peer, which counts what arrives. This is the
//     setup whose coturn figures match the ones quoted in issue 5.
//   - -mode pair: clients A and B both allocate (RA, RB), and each binds a
//     channel to the other's relayed address, as two clients that both need
//     a relay talk (and as coturn's turnutils_uclient -y does). The server
//     handles each packet twice: RA sends it to RB, and RB's data goes to
//     B as ChannelData. B counts.
//
// The sender is paced by a clock: packet k is due at k/rate seconds, and
// whatever is due goes out in batches of -batch datagrams per sendmmsg
// (golang.org/x/net/ipv4 WriteBatch), or with -gso as one UDP GSO datagram
// per batch that the kernel cuts into -batch datagrams (Linux UDP_SEGMENT):
// on loopback the sender pays for delivering every datagram into the
// server's socket, and GSO is what lets one core offer 200,000 packets per
// second. The sender waits with nanosleep(2), since Go's timers are about a
// millisecond late on a small VM. It falls at most 2 ms behind; a sender
// starved of CPU for longer does not burst to catch up but pushes its
// schedule back and counts a slip, so sent_rate shows what was really
// offered. The receiver reads with recvmmsg.
//
// Every payload carries a run token and a sequence number, so the count is
// exact: the first -warmup worth of packets are not counted, the next
// -duration worth are, and a packet counts if it arrives before the
// receiver has seen nothing for -drain after the sender finished.
//
// It refuses any server that is not a loopback address and bounds every
// run: at most 30 s per rate, 10 rates, 2,000,000 packets per second, and
// twice the planned time plus 3 s per rate.
//
// Usage:
//
//   - -mode many: -allocs allocations (200), each with a peer of its own,
//     ChannelData both ways at each rate per allocation (see many.go): the
//     shape of real TURN traffic. It also reports the server's CPU time
//     per relayed packet.
//
//     relayload -server 127.0.0.1:3478 -user u:p [-mode peer|pair|many] [-allocs 200] [-gso] [-rates 80000,150000,200000] [-duration 5s] [-server-pid PID]
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
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/turn"
)

// Bounds on the flags.
const (
	maxRate     = 2_000_000
	maxRates    = 10
	maxDuration = 30 * time.Second
	maxWarmup   = 5 * time.Second
	maxBatch    = 1024
	minSize     = 16 // run token and sequence number
	maxSize     = 1400
)

func main() {
	// The sender sleeps in nanosleep(2), holding its thread and P; the
	// receiver needs another P to keep reading meanwhile, even when both
	// run on one core (taskset).
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	// recvmmsg through golang.org/x/net allocates an address per datagram;
	// collecting that garbage would pause the sender at random. Collect
	// only when the heap reaches 512 MB, which a run of the bounded length
	// rarely does.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(512 << 20)
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
		fmt.Fprintf(stderr, "relayload: %v\n", err)
		return 2
	}
	stopProfile, err := turnload.StartCPUProfile(cfg.cpuProf)
	if err != nil {
		fmt.Fprintf(stderr, "relayload: %v\n", err)
		return 1
	}
	defer stopProfile()
	var r interface {
		run(ctx context.Context, rate int) (result, error)
		close()
	}
	if cfg.mode == "many" {
		r, err = setupMany(cfg)
	} else {
		r, err = setup(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "relayload: setup: %v\n", err)
		return 1
	}
	defer r.close()
	code := 0
	for _, rate := range cfg.rates {
		if ctx.Err() != nil {
			return 1
		}
		res, err := r.run(ctx, rate)
		if err != nil {
			fmt.Fprintf(stderr, "relayload: %d/s: %v\n", rate, err)
			code = 1
			continue
		}
		fmt.Fprintln(stdout, res.String())
	}
	return code
}

// config is the validated command line.
type config struct {
	server   netip.AddrPort
	creds    turnload.Creds
	mode     string
	rates    []int
	duration time.Duration
	warmup   time.Duration
	drain    time.Duration
	size     int
	batch    int
	channel  uint16
	label    string
	pid      int
	cpuProf  string
	gso      bool
	allocs   int
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var server, user, rates string
	var channel uint
	fs := flag.NewFlagSet("relayload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&server, "server", "", "TURN server `address`, a loopback IP and port")
	fs.StringVar(&user, "user", "", "long-term credentials `NAME:PASSWORD`")
	fs.StringVar(&c.mode, "mode", "peer", "peer: one allocation and a plain UDP peer; pair: two allocations relay to each other; many: -allocs allocations, each with its own peer, ChannelData both ways, rates per allocation")
	fs.IntVar(&c.allocs, "allocs", 200, "allocations in -mode many")
	fs.StringVar(&rates, "rates", "80000,150000,200000", "comma-separated offered `rates` in packets per second, run in order")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per rate (at most 30s)")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "load before measuring, per rate, not counted (at most 5s)")
	fs.DurationVar(&c.drain, "drain", 300*time.Millisecond, "how long the receiver waits for stragglers after the last packet")
	fs.IntVar(&c.size, "size", 100, "application data bytes per packet (16 to 1400)")
	fs.IntVar(&c.batch, "batch", 32, "datagrams per sendmmsg/recvmmsg call")
	fs.UintVar(&channel, "channel", uint(turn.MinChannel), "channel number to bind (0x4000-0x4FFF)")
	fs.StringVar(&c.label, "label", "", "name echoed in the output (for scripts)")
	fs.BoolVar(&c.gso, "gso", false, "send each batch as one UDP GSO datagram (Linux UDP_SEGMENT) instead of sendmmsg")
	fs.StringVar(&c.cpuProf, "cpuprofile", "", "write the generator's CPU profile to `FILE`")
	fs.IntVar(&c.pid, "server-pid", 0, "`PID` of the server process, to report the cores it used (0: do not)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.server, err = loopback.Target(server); err != nil {
		return c, fmt.Errorf("-server: %w", err)
	}
	if c.creds, err = turnload.ParseCreds(user); err != nil {
		return c, err
	}
	if c.mode != "pair" && c.mode != "peer" && c.mode != "many" {
		return c, fmt.Errorf("-mode %q: want pair, peer or many", c.mode)
	}
	if c.allocs < 1 || c.allocs > maxAllocs {
		return c, fmt.Errorf("-allocs %d: want 1 to %d", c.allocs, maxAllocs)
	}
	for f := range strings.SplitSeq(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxRate {
			return c, fmt.Errorf("-rates: %q is not a rate from 1 to %d", f, maxRate)
		}
		if c.mode == "many" && n*c.allocs > maxRate {
			return c, fmt.Errorf("-rates: %d per allocation over %d allocations exceeds %d packets per second", n, c.allocs, maxRate)
		}
		c.rates = append(c.rates, n)
	}
	switch {
	case len(c.rates) > maxRates:
		return c, fmt.Errorf("-rates: at most %d rates", maxRates)
	case c.duration < 100*time.Millisecond || c.duration > maxDuration:
		return c, fmt.Errorf("-duration %v: want 100ms to %v", c.duration, maxDuration)
	case c.warmup < 0 || c.warmup > maxWarmup:
		return c, fmt.Errorf("-warmup %v: want 0 to %v", c.warmup, maxWarmup)
	case c.drain < 10*time.Millisecond || c.drain > 5*time.Second:
		return c, fmt.Errorf("-drain %v: want 10ms to 5s", c.drain)
	case c.size < minSize || c.size > maxSize:
		return c, fmt.Errorf("-size %d: want %d to %d", c.size, minSize, maxSize)
	case c.batch < 1 || c.batch > maxBatch:
		return c, fmt.Errorf("-batch %d: want 1 to %d", c.batch, maxBatch)
	case c.gso && !gsoSupported:
		return c, errors.New("-gso needs Linux (UDP_SEGMENT)")
	case c.gso && c.batch > 64:
		return c, fmt.Errorf("-gso: -batch %d exceeds the kernel's 64 segments per datagram", c.batch)
	case c.gso && c.batch*(turn.ChannelDataHeaderSize+c.size) > 65000:
		return c, fmt.Errorf("-gso: -batch %d of %d-byte messages exceeds a 64 KB datagram", c.batch, turn.ChannelDataHeaderSize+c.size)
	case !turn.ValidChannel(uint16(channel), false) || channel > 0xffff:
		return c, fmt.Errorf("-channel %#x: want 0x4000-0x4FFF", channel)
	}
	c.channel = uint16(channel)
	return c, nil
}

// result is one rate's measurement.
type result struct {
	label     string
	mode      string
	offered   int            // packets per second asked for
	counted   int            // packets in the measured window
	span      time.Duration  // time the measured packets took to send
	received  int            // measured packets that arrived
	stray     int            // datagrams that were not one of this run's packets
	sendErrs  int            // failed sendmmsg calls
	slips     int            // times the sender fell behind and shifted its schedule
	cpu       turnload.Usage // over the rate's run, warmup and drain included
	truncated bool
	// -mode many: allocations, and every packet of the run that arrived,
	// warmup included (what the server relayed while cpu was measured).
	allocs, relayedAll int
}

func (r result) String() string {
	s := ""
	if r.label != "" {
		s = "label=" + r.label + " "
	}
	secs := r.span.Seconds()
	rx, tx := 0.0, 0.0
	if secs > 0 {
		rx, tx = float64(r.received)/secs, float64(r.counted)/secs
	}
	loss := 0.0
	if r.counted > 0 {
		loss = 100 * float64(r.counted-r.received) / float64(r.counted)
	}
	u := r.cpu
	s += fmt.Sprintf("mode=%s offered=%d sent_rate=%.0f rx_rate=%.0f loss=%.3f%% counted=%d received=%d stray=%d send_errors=%d slips=%d seconds=%.3f cpu=%.2fs gen_cores=%.2f server_cores=%.2f other_cores=%.2f",
		r.mode, r.offered, tx, rx, loss, r.counted, r.received, r.stray, r.sendErrs, r.slips, secs, u.Self, u.Cores(u.Self), u.Cores(u.Server), u.Cores(u.Other))
	if r.allocs > 0 {
		perPkt := 0.0
		if r.relayedAll > 0 {
			perPkt = 1e6 * u.Server / float64(r.relayedAll)
		}
		s += fmt.Sprintf(" allocs=%d relayed_all=%d server_us_per_packet=%.2f", r.allocs, r.relayedAll, perPkt)
	}
	if r.truncated {
		s += " truncated=true"
	}
	return s
}
