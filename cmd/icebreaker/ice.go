package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/internal/icecli"
	"github.com/icebreaker-net/icebreaker/portmap"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// iceStdin returns where the command writing to stdout reads the peer's
// token from. It is os.Stdin; tests pair each command's stdout with its own
// reader so that two commands can run in one process.
var iceStdin = func(stdout io.Writer) io.Reader { return os.Stdin }

// peerCandidates parses the candidates of the peer's token.
func peerCandidates(t icecli.Token) ([]ice.Candidate, error) {
	cands := make([]ice.Candidate, 0, len(t.Candidates))
	for i, s := range t.Candidates {
		c, err := ice.ParseCandidate(s)
		if err != nil {
			return nil, fmt.Errorf("%w (candidate %d: %v)", icecli.ErrBadToken, i+1, err)
		}
		cands = append(cands, c)
	}
	return cands, nil
}

// iceOptions are the parsed flags of `icebreaker ice offer|answer`.
type iceOptions struct {
	role       string // "offer" (controlling) or "answer" (controlled)
	stun       listFlag
	turn       listFlag
	turnUser   string
	turnPass   string
	turnSecret string
	ips        listFlag
	noHost     bool
	noSrflx    bool
	noPortmap  bool
	pmTimeout  time.Duration
	relayOnly  bool
	loopback   bool
	v4, v6     bool
	count      int
	timeout    time.Duration
	json       bool
	verbose    bool
	ports      ice.PortRange
}

func iceUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: icebreaker ice offer|answer [flags]")
	fmt.Fprintln(w, "\nConnects two machines with ICE (RFC 8445) and no signaling server: each side prints")
	fmt.Fprintln(w, "one line on standard output, its token (ICE credentials and candidates), and reads")
	fmt.Fprintln(w, "the peer's token as one line on standard input. Copy and paste the tokens, or wire two")
	fmt.Fprintln(w, "processes with pipes. 'offer' is the controlling agent, 'answer' the controlled one.")
	fmt.Fprintln(w, "Then both print the selected pair and the time to connect, exchange --count pings")
	fmt.Fprintln(w, "over it, print the round-trip times and exit 0. Messages go to standard error;")
	fmt.Fprintln(w, "with --json a summary follows the token on standard output.")
	fmt.Fprintln(w, "\nRun 'icebreaker ice offer -h' for the flags.")
}

// runICE dispatches `icebreaker ice offer|answer`.
func runICE(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		iceUsage(stderr)
		return fmt.Errorf("%w: missing offer or answer", errUsage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		iceUsage(stdout)
		return nil
	case "offer", "answer":
	default:
		iceUsage(stderr)
		return fmt.Errorf("%w: unknown ice command %q (want offer or answer)", errUsage, args[0])
	}
	o, err := parseICEArgs(args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	return runICESession(ctx, o, iceStdin(stdout), stdout, stderr)
}

func parseICEArgs(role string, args []string, stderr io.Writer) (*iceOptions, error) {
	fs := newFlagSet("ice "+role, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: icebreaker ice %s [flags]\n\n", role)
		fmt.Fprintln(stderr, "To force a path, give --no-host, --no-srflx or --relay-only on both sides.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	o := &iceOptions{role: role}
	secrets := o.registerGather(fs)
	fs.BoolVar(&o.noHost, "no-host", false, "do not offer host candidates")
	fs.BoolVar(&o.noSrflx, "no-srflx", false, "do not offer server-reflexive candidates")
	fs.BoolVar(&o.noPortmap, "no-portmap", false, "do not ask the router for a port mapping (PCP, NAT-PMP, UPnP IGD)")
	fs.DurationVar(&o.pmTimeout, "portmap-timeout", portmap.DefaultTimeout, "how long gathering waits for the router's port mapping")
	portRange := fs.String("port-range", "", "bind host candidates to a UDP port in `MIN-MAX` (a firewall that opens only those)")
	fs.IntVar(&o.count, "count", 5, "pings to exchange over the selected pair")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up when no candidate pair worked after this long (from the peer's token)")
	fs.BoolVar(&o.json, "json", false, "print a JSON summary on standard output after the token")
	fs.BoolVar(&o.verbose, "v", false, "log the agent's progress to standard error")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	usage := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	if *portRange != "" {
		if o.ports, err = parseICEPortRange(*portRange); err != nil {
			return nil, usage("--port-range: %v", err)
		}
	}
	if err := o.checkGather(secrets); err != nil {
		return nil, err
	}
	switch {
	case len(pos) > 0:
		return nil, usage("unexpected argument %q", pos[0])
	case o.count < 1 || o.count > 1000:
		return nil, usage("--count must be 1-1000")
	case o.timeout <= 0:
		return nil, usage("--timeout must be positive")
	case o.pmTimeout <= 0:
		return nil, usage("--portmap-timeout must be positive")
	case o.relayOnly && len(o.turn) == 0:
		return nil, usage("--relay-only needs --turn")
	case o.noHost && o.noSrflx && len(o.turn) == 0:
		return nil, usage("--no-host and --no-srflx leave nothing to offer without --turn")
	case o.noHost && len(o.stun) == 0 && len(o.turn) == 0:
		return nil, usage("--no-host leaves nothing to offer without --stun or --turn")
	}
	return o, nil
}

// gatherSecrets are the secret flags of registerGather, resolved by
// checkGather.
type gatherSecrets struct{ pass, secret *secretFlag }

// registerGather registers the flags that choose the candidates and the
// STUN and TURN servers, which ice, send, receive, pipe and forward share.
func (o *iceOptions) registerGather(fs *flag.FlagSet) gatherSecrets {
	fs.Var(&o.stun, "stun", "STUN server `HOST[:PORT]` for server-reflexive candidates (repeatable)")
	fs.Var(&o.turn, "turn", "TURN server `URI` turn:HOST[:PORT] for relayed candidates (repeatable)")
	fs.StringVar(&o.turnUser, "turn-user", "", "TURN long-term credentials: user name")
	pass := addSecretFlag(fs, "turn-pass", envTURNPassword, "TURN long-term credentials: password")
	secret := addSecretFlag(fs, "turn-secret", envTURNSecret, "TURN REST API shared secret (instead of --turn-user/--turn-pass)")
	fs.Var(&o.ips, "ip", "gather host candidates only on this `IP or PREFIX` (repeatable)")
	fs.BoolVar(&o.relayOnly, "relay-only", false, "offer relayed candidates only")
	fs.BoolVar(&o.loopback, "loopback", false, "include loopback addresses (to try it on one machine)")
	fs.BoolVar(&o.v4, "4", false, "IPv4 only")
	fs.BoolVar(&o.v6, "6", false, "IPv6 only")
	return gatherSecrets{pass, secret}
}

// checkGather resolves the secrets and checks the flags of registerGather.
func (o *iceOptions) checkGather(secrets gatherSecrets) error {
	usage := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	var err error
	if o.turnPass, err = secrets.pass.resolve(o.turnUser != ""); err != nil {
		return err
	}
	if o.turnSecret, err = secrets.secret.resolve(o.turnUser == "" && len(o.turn) > 0); err != nil {
		return err
	}
	switch {
	case o.v4 && o.v6:
		return usage("-4 and -6 exclude each other")
	case o.turnSecret != "" && (o.turnUser != "" || o.turnPass != ""):
		return usage("--turn-secret excludes --turn-user/--turn-pass")
	case (o.turnUser == "") != (o.turnPass == ""):
		return usage("--turn-user and --turn-pass go together")
	case len(o.turn) == 0 && (o.turnUser != "" || o.turnSecret != ""):
		return usage("TURN credentials without --turn")
	case len(o.turn) > 0 && o.turnUser == "" && o.turnSecret == "":
		return usage("--turn needs --turn-user and --turn-pass, or --turn-secret")
	}
	for _, s := range o.ips {
		if _, err := icecli.ParsePrefixOrIP(s); err != nil {
			return usage("--ip: %v", err)
		}
	}
	for _, s := range o.stun {
		if _, _, err := splitServer(s, 3478); err != nil {
			return usage("--stun: %v", err)
		}
	}
	for _, s := range o.turn {
		var so stunOptions
		if err := parseTurnURI(s, &so); err != nil {
			return usage("--turn: %v", err)
		}
	}
	return nil
}

// gatherConfig turns the options into the agent's GatherConfig, resolving
// the STUN servers.
func (o *iceOptions) gatherConfig(ctx context.Context) (ice.GatherConfig, error) {
	gc := ice.GatherConfig{
		IncludeLoopback: o.loopback,
		DisableIPv4:     o.v6,
		DisableIPv6:     o.v4,
		PortRange:       o.ports,
	}
	if len(o.ips) > 0 {
		var prefixes []netip.Prefix
		for _, s := range o.ips {
			p, _ := icecli.ParsePrefixOrIP(s) // checked by parseICEArgs
			prefixes = append(prefixes, p)
		}
		gc.IPFilter = func(ip netip.Addr) bool {
			ip = ip.WithZone("")
			for _, p := range prefixes {
				if p.Contains(ip) {
					return true
				}
			}
			return false
		}
	}
	gc.RelayOnly = o.relayOnly
	for _, s := range o.turn {
		so := stunOptions{network: o.network()}
		parseTurnURI(s, &so) // checked by parseICEArgs
		addr, err := resolveServer(ctx, &so)
		if err != nil {
			return gc, fmt.Errorf("--turn: %w", err)
		}
		ts := ice.TURNServer{Addr: addr, Username: o.turnUser, Password: o.turnPass, Secret: o.turnSecret}
		switch so.transport {
		case "tcp":
			ts.Transport = turnclient.TCP
		case "tls":
			ts.Transport = turnclient.TLS
			if ts.TLSConfig, err = tlsConfig(&so, so.host); err != nil {
				return gc, err
			}
		}
		gc.TURNServers = append(gc.TURNServers, ts)
	}
	if o.noSrflx || o.relayOnly {
		return gc, nil
	}
	if !o.noPortmap && !o.v6 {
		pm, err := portmap.New(portmap.Config{Timeout: o.pmTimeout})
		if err != nil {
			return gc, err
		}
		gc.PortMapper = pm
	}
	for _, s := range o.stun {
		host, port, _ := splitServer(s, 3478)
		if ip, err := netip.ParseAddr(host); err == nil {
			gc.STUNServers = append(gc.STUNServers, netip.AddrPortFrom(ip.Unmap(), port))
			continue
		}
		ips, err := resolver.LookupNetIP(ctx, o.network(), host)
		if err != nil {
			return gc, fmt.Errorf("--stun: cannot resolve %s: %w", host, err)
		}
		for _, ip := range ips {
			gc.STUNServers = append(gc.STUNServers, netip.AddrPortFrom(ip.Unmap(), port))
		}
	}
	return gc, nil
}

// network is the resolver network of -4 and -6.
func (o *iceOptions) network() string {
	switch {
	case o.v4:
		return "ip4"
	case o.v6:
		return "ip6"
	}
	return "ip"
}

// offered reports whether a gathered candidate goes into the token.
func (o *iceOptions) offered(c ice.Candidate) bool {
	switch c.Type {
	case ice.TypeHost:
		return !o.noHost && !o.relayOnly
	case ice.TypeServerReflexive, ice.TypePeerReflexive:
		return !o.noSrflx && !o.relayOnly
	}
	return true
}

// gatherFailure is f in the warnings and the JSON summary.
func gatherFailure(f ice.GatherFailure) icecli.Failure {
	out := icecli.Failure{URI: f.URI, Op: f.Op, Error: f.Err.Error()}
	if f.Base.IsValid() {
		out.Base = f.Base.String()
	}
	return out
}

// noCandidates is the error when Gather found no candidate: after the
// warnings about each failed server, or when there was no host address
// (and no server to ask).
func noCandidates(o *iceOptions, failed int) error {
	switch {
	case failed > 0 && o.relayOnly:
		return errors.New("no candidate gathered: with --relay-only every candidate comes from a TURN server, and none gave one (see the warnings above: is the server reachable, are the TURN credentials right?)")
	case failed > 0:
		return errors.New("no candidate gathered: no usable host address, and no STUN or TURN server gave one (see the warnings above)")
	case !o.loopback:
		return errors.New("no candidate gathered: no usable host address (on one machine, add --loopback)")
	}
	return errors.New("no candidate gathered: no usable host address")
}

// candJSON is c in the JSON summary.
func candJSON(c ice.Candidate) icecli.Cand {
	return icecli.Cand{Type: c.Type.String(), Addr: c.Addr.String()}
}

func runICESession(ctx context.Context, o *iceOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	gc, err := o.gatherConfig(ctx)
	if err != nil {
		return err
	}
	cfg := ice.AgentConfig{Gather: gc}
	if o.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	agent, err := ice.NewAgent(cfg)
	if err != nil {
		return err
	}
	defer agent.Close()

	cands, err := agent.Gather(ctx)
	fails := agent.Stats().GatherFailures
	for _, f := range fails {
		fmt.Fprintf(stderr, "warning: %s\n", icecli.FailureLine(gatherFailure(f)))
	}
	if errors.Is(err, ice.ErrNoCandidates) {
		return noCandidates(o, len(fails))
	}
	if err != nil {
		return err
	}
	ufrag, pwd := agent.LocalCredentials()
	tok := icecli.Token{Role: o.role, Ufrag: ufrag, Pwd: pwd}
	var kinds, mapped []string
	for _, m := range agent.PortMappings() {
		mapped = append(mapped, m.String())
	}
	for _, c := range cands {
		if o.offered(c) {
			tok.Candidates = append(tok.Candidates, c.String())
			kinds = append(kinds, c.Type.String()+" "+c.Addr.String())
			if c.Origin == ice.OriginPortMap || slices.Contains(mapped, c.Addr.String()) {
				kinds[len(kinds)-1] += " (port mapping)"
			}
		}
	}
	if len(tok.Candidates) == 0 {
		return errors.New("no candidates to offer (are the STUN and TURN servers reachable, the TURN credentials right? did --ip or -4/-6 leave out every address?)")
	}
	fmt.Fprintf(stderr, "gathered %d %s: %s\n", len(kinds), pluralWord(len(kinds), "candidate"), strings.Join(kinds, ", "))
	peerCmd := "answer"
	if o.role == "answer" {
		peerCmd = "offer"
	}
	fmt.Fprintf(stderr, "give the next line to 'icebreaker ice %s' on the peer, then paste its token here:\n", peerCmd)
	peer, err := icecli.Exchange(ctx, stdout, stdin, tok)
	if err != nil {
		return err
	}
	remotes, err := peerCandidates(peer)
	if err != nil {
		return err
	}

	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	var conn net.Conn
	if o.role == "offer" {
		conn, err = agent.Dial(cctx, peer.Ufrag, peer.Pwd, remotes)
	} else {
		conn, err = agent.Accept(cctx, peer.Ufrag, peer.Pwd, remotes)
	}
	cancel()
	took := time.Since(start)
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ice.ErrFailed)) {
			return fmt.Errorf("ICE failed: no candidate pair worked after %.1f s (%w)", took.Seconds(), err)
		}
		return err
	}
	defer conn.Close()
	pair, _ := agent.SelectedPair()
	fmt.Fprintf(stderr, "connected in %.1f ms: local %s %s <-> remote %s %s\n",
		icecli.MS(took), pair.Local.Type, pair.Local.Addr, pair.Remote.Type, pair.Remote.Addr)

	sum := icecli.Summary{
		Role:             o.role,
		Local:            candJSON(pair.Local),
		Remote:           candJSON(pair.Remote),
		ConnectMS:        icecli.MS(took),
		LocalCandidates:  tok.Candidates,
		RemoteCandidates: peer.Candidates,
		PortMapped:       mapped,
	}
	for _, f := range fails {
		sum.GatherFailures = append(sum.GatherFailures, gatherFailure(f))
	}
	if pair.Local.Origin != ice.OriginUnknown {
		sum.LocalOrigin = pair.Local.Origin.String()
	}
	return icecli.PingAndReport(ctx, conn, o.count, &sum, o.json, stdout, stderr, func() *icecli.Pair {
		if now, ok := agent.SelectedPair(); ok && (now.Local.Addr != pair.Local.Addr || now.Remote.Addr != pair.Remote.Addr) {
			return &icecli.Pair{Local: candJSON(now.Local), Remote: candJSON(now.Remote)}
		}
		return nil
	})
}

// parseICEPortRange parses MIN-MAX, two ports with MIN <= MAX.
func parseICEPortRange(s string) (ice.PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || a == 0 || a > b {
		return ice.PortRange{}, fmt.Errorf("%q is not MIN-MAX with 1 <= MIN <= MAX <= 65535", s)
	}
	return ice.PortRange{Min: uint16(a), Max: uint16(b)}, nil
}
