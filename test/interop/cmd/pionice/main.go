// Command pionice is the pion/ice v4 (https://github.com/pion/ice) twin of
// `icebreaker ice`: the same command line (a subset of its flags), the same
// ib1 token, the same ping exchange over the selected pair and the same
// --json summary (all from internal/icecli, which `icebreaker ice` uses
// too), so that a test or a benchmark drives either binary the same way and
// one of each can connect to the other (ICE, RFC 8445,
// https://www.rfc-editor.org/rfc/rfc8445; candidates in the grammar of
// RFC 8839, Section 5.1).
//
//	pionice offer|answer [--stun HOST:PORT]... [--turn turn:HOST:PORT --turn-user U --turn-pass P]
//	                     [--ip IP|PREFIX]... [--relay-only] [--count N] [--timeout DUR] [--json] [-v]
//
// 'offer' is the controlling agent (Dial), 'answer' the controlled one
// (Accept). The agent runs with pion's default timing (check interval,
// acceptance waits, STUN gather timeout): it stands for pion as a user gets
// it. Only the network types (UDP over IPv4, plus IPv6 when an --ip is
// IPv6), the addresses (--ip; loopback is included when an --ip covers it),
// the servers and, with --relay-only, the candidate types are set; mDNS is
// off, since tokens carry plain addresses.
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/icecli"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/stun/v4"
)

// errUsage marks an error in the command line: exit status 2.
var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "pionice: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "pionice: %v\n", err)
	os.Exit(1)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// options are the parsed flags.
type options struct {
	role               string // "offer" (controlling) or "answer" (controlled)
	stun, turn         []*stun.URI
	turnUser, turnPass string
	prefixes           []netip.Prefix
	relayOnly          bool
	count              int
	timeout            time.Duration
	json, verbose      bool
}

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// parseArgs parses "offer|answer [flags]" (flags may also come first).
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("pionice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pionice offer|answer [flags]")
		fmt.Fprintln(stderr, "\nThe pion/ice v4 twin of 'icebreaker ice': prints its token on standard output, reads")
		fmt.Fprintln(stderr, "the peer's on standard input, connects, exchanges --count pings and exits 0.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var stuns, turns, ips listFlag
	o := &options{}
	fs.Var(&stuns, "stun", "STUN server `HOST[:PORT]` for server-reflexive candidates (repeatable)")
	fs.Var(&turns, "turn", "TURN server `URI` turn:HOST[:PORT] for relayed candidates (repeatable)")
	fs.StringVar(&o.turnUser, "turn-user", "", "TURN long-term credentials: user name")
	fs.StringVar(&o.turnPass, "turn-pass", "", "TURN long-term credentials: password")
	fs.Var(&ips, "ip", "gather host candidates only on this `IP or PREFIX` (repeatable)")
	fs.BoolVar(&o.relayOnly, "relay-only", false, "offer relayed candidates only")
	fs.IntVar(&o.count, "count", 5, "pings to exchange over the selected pair")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up when no candidate pair worked after this long (from the peer's token)")
	fs.BoolVar(&o.json, "json", false, "print a JSON summary on standard output after the token")
	fs.BoolVar(&o.verbose, "v", false, "log pion's progress (debug level) to standard error")

	// Flags and the one positional argument may come in any order.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) == 0:
		return nil, usageError("missing offer or answer")
	case len(pos) > 1:
		return nil, usageError("unexpected argument %q", pos[1])
	case pos[0] != "offer" && pos[0] != "answer":
		return nil, usageError("unknown command %q (want offer or answer)", pos[0])
	case o.count < 1 || o.count > 1000:
		return nil, usageError("--count must be 1-1000")
	case o.timeout <= 0:
		return nil, usageError("--timeout must be positive")
	case (o.turnUser == "") != (o.turnPass == ""):
		return nil, usageError("--turn-user and --turn-pass go together")
	case len(turns) == 0 && o.turnUser != "":
		return nil, usageError("TURN credentials without --turn")
	case len(turns) > 0 && o.turnUser == "":
		return nil, usageError("--turn needs --turn-user and --turn-pass")
	case o.relayOnly && len(turns) == 0:
		return nil, usageError("--relay-only needs --turn")
	}
	o.role = pos[0]
	for _, s := range ips {
		p, err := icecli.ParsePrefixOrIP(s)
		if err != nil {
			return nil, usageError("--ip: %v", err)
		}
		o.prefixes = append(o.prefixes, p)
	}
	for _, s := range stuns {
		u, err := stun.ParseURI("stun:" + s)
		if err != nil {
			return nil, usageError("--stun %q: %v", s, err)
		}
		o.stun = append(o.stun, u)
	}
	for _, s := range turns {
		u, err := stun.ParseURI(s)
		if err != nil || u.Scheme != stun.SchemeTypeTURN || u.Proto != stun.ProtoTypeUDP {
			return nil, usageError("--turn %q: want turn:HOST[:PORT] (TURN over UDP)", s)
		}
		u.Username, u.Password = o.turnUser, o.turnPass
		o.turn = append(o.turn, u)
	}
	return o, nil
}

// agentOptions returns the pion options for o: network types, addresses,
// servers and candidate types only, never timing.
func (o *options) agentOptions(stderr io.Writer) []ice.AgentOption {
	logs := logging.NewDefaultLoggerFactory()
	logs.Writer = stderr
	logs.DefaultLogLevel = logging.LogLevelWarn
	if o.verbose {
		logs.DefaultLogLevel = logging.LogLevelDebug
	}
	types := []ice.NetworkType{ice.NetworkTypeUDP4}
	loopback := false
	for _, p := range o.prefixes {
		if p.Addr().Is6() && len(types) == 1 {
			types = append(types, ice.NetworkTypeUDP6)
		}
		loopback = loopback || p.Addr().IsLoopback()
	}
	opts := []ice.AgentOption{
		ice.WithNetworkTypes(types),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithLoggerFactory(logs),
	}
	if urls := append(append([]*stun.URI(nil), o.stun...), o.turn...); len(urls) > 0 {
		opts = append(opts, ice.WithUrls(urls))
	}
	if len(o.prefixes) > 0 {
		prefixes := o.prefixes
		opts = append(opts, ice.WithIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			if !ok {
				return false
			}
			a = a.Unmap()
			for _, p := range prefixes {
				if p.Contains(a) {
					return true
				}
			}
			return false
		}))
	}
	if loopback {
		opts = append(opts, ice.WithIncludeLoopback())
	}
	if o.relayOnly {
		opts = append(opts, ice.WithCandidateTypes([]ice.CandidateType{ice.CandidateTypeRelay}))
	}
	return opts
}

// peerCandidates parses the candidates of the peer's token.
func peerCandidates(t icecli.Token) ([]ice.Candidate, error) {
	cands := make([]ice.Candidate, 0, len(t.Candidates))
	for i, s := range t.Candidates {
		c, err := ice.UnmarshalCandidate(s)
		if err != nil {
			return nil, fmt.Errorf("%w (candidate %d %q: %v)", icecli.ErrBadToken, i+1, s, err)
		}
		cands = append(cands, c)
	}
	return cands, nil
}

func candOf(c ice.Candidate) icecli.Cand {
	return icecli.Cand{Type: c.Type().String(), Addr: net.JoinHostPort(c.Address(), strconv.Itoa(c.Port()))}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	agent, err := ice.NewAgentWithOptions(o.agentOptions(stderr)...)
	if err != nil {
		return fmt.Errorf("creating the pion agent: %w", err)
	}
	defer agent.Close()

	cands, err := gather(ctx, agent)
	if err != nil {
		return err
	}
	ufrag, pwd, err := agent.GetLocalUserCredentials()
	if err != nil {
		return err
	}
	tok := icecli.Token{Role: o.role, Ufrag: ufrag, Pwd: pwd}
	var kinds []string
	for _, c := range cands {
		tok.Candidates = append(tok.Candidates, c.Marshal())
		kinds = append(kinds, c.Type().String()+" "+candOf(c).Addr)
	}
	if len(tok.Candidates) == 0 {
		return errors.New("no candidates to offer (are the STUN and TURN servers reachable, the TURN credentials right? did --ip leave out every address?)")
	}
	noun := "candidates"
	if len(kinds) == 1 {
		noun = "candidate"
	}
	fmt.Fprintf(stderr, "gathered %d %s: %s\n", len(kinds), noun, strings.Join(kinds, ", "))
	peer, err := icecli.Exchange(ctx, stdout, stdin, tok)
	if err != nil {
		return err
	}
	remotes, err := peerCandidates(peer)
	if err != nil {
		return err
	}

	// connect_ms: from the peer's token to Dial/Accept returning.
	start := time.Now()
	for _, c := range remotes {
		if err := agent.AddRemoteCandidate(c); err != nil {
			return fmt.Errorf("adding remote candidate %s: %w", c.Marshal(), err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	var conn *ice.Conn
	if o.role == "offer" {
		conn, err = agent.Dial(cctx, peer.Ufrag, peer.Pwd)
	} else {
		conn, err = agent.Accept(cctx, peer.Ufrag, peer.Pwd)
	}
	cancel()
	took := time.Since(start)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, ice.ErrCanceledByCaller) {
			return fmt.Errorf("ICE failed: no candidate pair worked after %.1f s (%w)", took.Seconds(), err)
		}
		return err
	}
	defer conn.Close()
	pair, err := agent.GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return fmt.Errorf("connected but no selected pair (%v)", err)
	}
	local, remote := candOf(pair.Local), candOf(pair.Remote)
	fmt.Fprintf(stderr, "connected in %.1f ms: local %s %s <-> remote %s %s\n",
		icecli.MS(took), local.Type, local.Addr, remote.Type, remote.Addr)

	sum := icecli.Summary{
		Role:             o.role,
		Local:            local,
		Remote:           remote,
		ConnectMS:        icecli.MS(took),
		LocalCandidates:  tok.Candidates,
		RemoteCandidates: peer.Candidates,
	}
	return icecli.PingAndReport(ctx, conn, o.count, &sum, o.json, stdout, stderr, nil)
}

// gather runs pion's gathering to the end and returns the candidates in
// the order pion reported them.
func gather(ctx context.Context, agent *ice.Agent) ([]ice.Candidate, error) {
	// pion calls the handler on its own goroutine, once per candidate and
	// with nil at the end; the loop below drains the channel until then.
	ch := make(chan ice.Candidate, 16)
	if err := agent.OnCandidate(func(c ice.Candidate) {
		select {
		case ch <- c:
		case <-ctx.Done():
		}
	}); err != nil {
		return nil, err
	}
	if err := agent.GatherCandidates(); err != nil {
		return nil, fmt.Errorf("gathering: %w", err)
	}
	var cands []ice.Candidate
	for {
		select {
		case c := <-ch:
			if c == nil {
				return cands, nil
			}
			cands = append(cands, c)
		case <-ctx.Done():
			return nil, fmt.Errorf("gathering: %w", ctx.Err())
		}
	}
}
