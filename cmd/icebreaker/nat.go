package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/icebreaker-net/icebreaker/natbehavior"
	"github.com/icebreaker-net/icebreaker/portmap"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// natDefaultTimeout is how long `icebreaker nat` waits for a server that
// should answer: shorter than RFC 8489's 39.5 s, for a person waiting.
const natDefaultTimeout = 10 * time.Second

// natPortmapTimeout bounds each request to the router, and the wait for
// the server's answer through a port mapping.
const natPortmapTimeout = 3 * time.Second

// runNat runs the RFC 5780 tests against one server and prints the report.
// It returns nil when a report was produced (even with tests that could not
// run), an error on no response or a name that does not resolve (exit 1),
// and errUsage on a bad command line (exit 2).
func runNat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("nat", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker nat [flags] SERVER[:PORT]")
		fmt.Fprintln(stderr, "\nFinds out what kind of NAT this host is behind, with a STUN server that supports")
		fmt.Fprintln(stderr, "RFC 5780 (two IP addresses, e.g. 'icebreaker serve --listen IP1 --alt-ip IP2'):")
		fmt.Fprintln(stderr, "mapping and filtering behaviour, hairpinning, and optionally the binding lifetime.")
		fmt.Fprintln(stderr, "Behind a NAT it also asks the router for a port mapping (PCP, NAT-PMP, UPnP IGD) and")
		fmt.Fprintln(stderr, "checks that the server's alternate address gets in through it (--no-portmap: don't).")
		fmt.Fprintln(stderr, "The port defaults to 3478.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var (
		jsonOut     = fs.Bool("json", false, "print the report as JSON")
		lifetime    = fs.Bool("lifetime", false, "also measure how long an idle NAT binding lives (slow: up to --lifetime-max)")
		lifetimeMax = fs.Duration("lifetime-max", natbehavior.DefaultLifetimeMax, "longest idle time the lifetime test tries")
		hairpin     = fs.Bool("hairpin", true, "test hairpinning (use --hairpin=false to skip)")
		only4       = fs.Bool("4", false, "use IPv4 only")
		only6       = fs.Bool("6", false, "use IPv6 only")
		rto         = fs.Duration("rto", stunclient.DefaultRTO, "initial retransmission timeout of requests the server must answer")
		timeout     = fs.Duration("timeout", natDefaultTimeout, "give up on a request the server must answer after this long")
		local       = fs.String("local", "", "local `IP[:PORT]` to bind; the port, if given, is the one tested for mapping")
		noPortmap   = fs.Bool("no-portmap", false, "do not ask the router for a port mapping (PCP, NAT-PMP, UPnP IGD)")
	)
	// Flags may come before or after SERVER.
	var pos []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(pos) != 1:
		return fmt.Errorf("%w: want one SERVER[:PORT], got %d arguments", errUsage, len(pos))
	case *only4 && *only6:
		return fmt.Errorf("%w: -4 and -6 exclude each other", errUsage)
	case *rto <= 0:
		return fmt.Errorf("%w: --rto must be positive", errUsage)
	case *timeout <= 0:
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	case *lifetime && *lifetimeMax < time.Second:
		return fmt.Errorf("%w: --lifetime-max must be at least 1s", errUsage)
	}
	cfg := natbehavior.Config{
		Retransmit:    stunclient.Retransmit{RTO: *rto},
		Timeout:       *timeout,
		NoHairpinning: !*hairpin,
		Lifetime:      *lifetime,
		LifetimeMax:   *lifetimeMax,
		Network:       "udp",
	}
	switch {
	case *only4:
		cfg.Network = "udp4"
	case *only6:
		cfg.Network = "udp6"
	}
	if *local != "" {
		l, err := parseLocal(*local)
		if err != nil {
			return fmt.Errorf("%w: --local: %v", errUsage, err)
		}
		cfg.Local = l
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *lifetime && !*jsonOut {
		fmt.Fprintf(stderr, "Measuring the binding lifetime too: this takes up to %s.\n", stunclient.FormatDuration(*lifetimeMax+5*time.Second))
	}

	r, err := natbehavior.Discover(ctx, pos[0], cfg)
	if err != nil {
		var te *stunclient.TimeoutError
		if errors.As(err, &te) {
			return fmt.Errorf("no response from %s in %s (%d %s): UDP to the server is blocked, or no STUN server runs there",
				te.Server, stunclient.FormatDuration(te.Waited), te.Attempts, pluralWord(te.Attempts, "request"))
		}
		return err
	}
	// A port mapping is for peers beyond the NAT: not asked for when there
	// is none, or when the server is on this host.
	if !*noPortmap && !*only6 && r.NATPresent == natbehavior.Yes && !r.Server.Addr().IsLoopback() {
		// Not gathering beside STUN here: a slow router gets more time.
		pm, err := portmap.New(portmap.Config{Timeout: natPortmapTimeout})
		if err != nil {
			return err
		}
		natbehavior.CheckPortMap(ctx, pm, r, *rto, min(*timeout, natPortmapTimeout))
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		return enc.Encode(r)
	}
	_, err = io.WriteString(stdout, r.Text())
	return err
}

// parseLocal reads "IP", "IP:PORT", "[IPv6]:PORT" or ":PORT".
func parseLocal(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 0), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if len(s) > 1 && s[0] == ':' {
		if port, err := strconv.ParseUint(s[1:], 10, 16); err == nil {
			return netip.AddrPortFrom(netip.Addr{}, uint16(port)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%q is not IP, IP:PORT or :PORT", s)
}
