package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/cmd/icebreaker/internal/turnloadcmd"
	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// turnLoadOptions are the parsed flags of `icebreaker turn load`.
type turnLoadOptions struct {
	client      turnClientOptions // server, credentials, TLS and --timeout, shared with turn check
	allocations int
	concurrency int
	size        int
	rate        float64 // datagrams per second, all allocations together
	duration    time.Duration
	mode        string         // "channel" or "send"
	peer        netip.AddrPort // an echo peer; zero: the allocations send to each other
	maxLoss     float64        // percent of datagrams that may be lost before the run fails
	json        bool
}

func parseTurnLoadArgs(args []string, stderr io.Writer) (*turnLoadOptions, error) {
	fs := newFlagSet("turn load", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker turn load [flags] turn:HOST[:PORT][?transport=udp|tcp] | turns:HOST[:PORT]")
		fmt.Fprint(stderr, `
Load-tests a TURN server: makes --allocations allocations, then sends --rate datagrams
per second (in total) of --size bytes for --duration, over channels or Send indications.
By default allocation i sends to allocation i^1 through the server (the server must
allow relaying between its own relayed addresses); with --peer, to a UDP echo server.
Reports sent, received, lost, latency percentiles and allocations per second.
Ctrl-C stops the run and prints what was measured so far.

flags:
`)
		fs.PrintDefaults()
	}
	o := &turnLoadOptions{}
	o.client.addFlags(fs, "time limit of each allocation, permission and the channel bindings")
	fs.IntVar(&o.allocations, "allocations", 10, fmt.Sprintf("number of allocations (1-%d; 2 or more without --peer)", turnloadcmd.MaxAllocations))
	fs.IntVar(&o.concurrency, "concurrency", 16, fmt.Sprintf("allocations (and permissions, deletions) in flight at once (1-%d)", turnloadcmd.MaxConcurrency))
	fs.IntVar(&o.size, "size", 100, fmt.Sprintf("datagram size in `BYTES` (%d-%d)", turnloadcmd.HeaderLen, turnloadcmd.MaxSize))
	fs.Float64Var(&o.rate, "rate", 100, fmt.Sprintf("datagrams per second in total, spread evenly over the allocations (at most %g)", float64(turnloadcmd.MaxRate)))
	fs.DurationVar(&o.duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %s)", turnloadcmd.MaxDuration))
	fs.StringVar(&o.mode, "mode", "channel", "channel: ChannelData after a ChannelBind; send: Send indications only")
	peer := fs.String("peer", "", "UDP echo server `IP:PORT` to send to, instead of pairing the allocations")
	fs.Float64Var(&o.maxLoss, "max-loss", 1, "fail (exit 1) when more than this `PERCENT` of the datagrams is lost")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	usage := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	switch {
	case len(pos) != 1:
		return nil, usage("want one turn: or turns: URI")
	case o.allocations < 1 || o.allocations > turnloadcmd.MaxAllocations:
		return nil, usage("--allocations must be 1-%d", turnloadcmd.MaxAllocations)
	case o.concurrency < 1 || o.concurrency > turnloadcmd.MaxConcurrency:
		return nil, usage("--concurrency must be 1-%d", turnloadcmd.MaxConcurrency)
	case o.size < turnloadcmd.HeaderLen || o.size > turnloadcmd.MaxSize:
		return nil, usage("--size must be %d-%d bytes", turnloadcmd.HeaderLen, turnloadcmd.MaxSize)
	case !(o.rate > 0) || o.rate > turnloadcmd.MaxRate: // !(>) also refuses NaN
		return nil, usage("--rate must be above 0 and at most %g datagrams per second", float64(turnloadcmd.MaxRate))
	case o.duration <= 0 || o.duration > turnloadcmd.MaxDuration:
		return nil, usage("--duration must be above 0 and at most %s", turnloadcmd.MaxDuration)
	case o.mode != turnloadcmd.ModeChannel && o.mode != turnloadcmd.ModeSend:
		return nil, usage("--mode must be channel or send, not %q", o.mode)
	case !(o.maxLoss >= 0) || o.maxLoss > 100:
		return nil, usage("--max-loss must be a percentage, 0-100")
	}
	if err := o.client.validate(pos[0]); err != nil {
		return nil, err
	}
	if *peer != "" {
		p, err := netip.ParseAddrPort(*peer)
		if err != nil || p.Port() == 0 {
			return nil, usage("--peer %q: want IP:PORT", *peer)
		}
		o.peer = netx.Unmap(p)
	} else if o.allocations < 2 {
		return nil, usage("pairing the allocations needs --allocations 2 or more (or give --peer)")
	}
	return o, nil
}

func runTurnLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseTurnLoadArgs(args, stderr)
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(ctx, o.client.stun.timeout)
	server, err := resolveServer(c, &o.client.stun)
	cancel()
	if err != nil {
		return err // "cannot resolve HOST: ..."
	}
	client, err := turnConfig(&o.client, server)
	if err != nil {
		return err
	}
	cfg := turnloadcmd.Config{
		Server: server, Client: client, Timeout: o.client.stun.timeout,
		Allocations: o.allocations, Concurrency: o.concurrency, Size: o.size,
		Rate: o.rate, Duration: o.duration, Mode: o.mode, Peer: o.peer, MaxLoss: o.maxLoss,
	}
	if !o.json && isTerminal(stdout) {
		cfg.Progress = stdout
	}
	rep, runErr := turnloadcmd.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	if o.json {
		if err := turnloadcmd.WriteJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		turnloadcmd.Print(stdout, rep)
	}
	return runErr
}

// isTerminal reports whether w is a character device (a terminal), where
// a progress line rewritten with \r makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
