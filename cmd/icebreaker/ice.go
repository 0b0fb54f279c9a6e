package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// iceStdin returns where the command writing to stdout reads the peer's
// token from. It is os.Stdin; tests pair each command's stdout with its own
// reader so that two commands can run in one process.
var iceStdin = func(stdout io.Writer) io.Reader { return os.Stdin }

// The token: tokenPrefix followed by the unpadded base64url encoding of a
// iceToken in JSON. The version is in the prefix so a later format can be
// told apart.
const tokenPrefix = "ib1:"

// iceToken is what one side tells the other: its role, its ICE
// credentials (RFC 8445, Section 5.3) and its candidates in the
// a=candidate grammar of RFC 8839, Section 5.1, without "candidate:".
type iceToken struct {
	Role       string   `json:"r"` // "offer" or "answer"
	Ufrag      string   `json:"u"`
	Pwd        string   `json:"p"`
	Candidates []string `json:"c"`
}

// errBadToken is wrapped by every error about the peer's token.
var errBadToken = errors.New("the peer's token is not an icebreaker ICE token")

func encodeToken(t iceToken) string {
	b, _ := json.Marshal(t) // strings only: cannot fail
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken parses a token line and its candidates.
func decodeToken(line string) (iceToken, []ice.Candidate, error) {
	var t iceToken
	line = strings.TrimSpace(line)
	rest, ok := strings.CutPrefix(line, tokenPrefix)
	if !ok {
		return t, nil, fmt.Errorf("%w (it should start with %q)", errBadToken, tokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest, "="))
	if err != nil {
		return t, nil, fmt.Errorf("%w (bad base64: %v; was it copied whole?)", errBadToken, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, nil, fmt.Errorf("%w (bad content: %v)", errBadToken, err)
	}
	switch {
	case t.Role != "offer" && t.Role != "answer":
		return t, nil, fmt.Errorf("%w (role %q)", errBadToken, t.Role)
	case t.Ufrag == "" || t.Pwd == "":
		return t, nil, fmt.Errorf("%w (no ICE credentials)", errBadToken)
	case len(t.Candidates) == 0:
		return t, nil, fmt.Errorf("%w (no candidates)", errBadToken)
	}
	cands := make([]ice.Candidate, 0, len(t.Candidates))
	for i, s := range t.Candidates {
		c, err := ice.ParseCandidate(s)
		if err != nil {
			return t, nil, fmt.Errorf("%w (candidate %d: %v)", errBadToken, i+1, err)
		}
		cands = append(cands, c)
	}
	return t, cands, nil
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
	relayOnly  bool
	loopback   bool
	v4, v6     bool
	count      int
	timeout    time.Duration
	json       bool
	verbose    bool
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
	fs.Var(&o.stun, "stun", "STUN server `HOST[:PORT]` for server-reflexive candidates (repeatable)")
	fs.Var(&o.turn, "turn", "TURN server `URI` turn:HOST[:PORT] for relayed candidates (repeatable)")
	fs.StringVar(&o.turnUser, "turn-user", "", "TURN long-term credentials: user name")
	fs.StringVar(&o.turnPass, "turn-pass", "", "TURN long-term credentials: password")
	fs.StringVar(&o.turnSecret, "turn-secret", "", "TURN REST API shared secret (instead of --turn-user/--turn-pass)")
	fs.Var(&o.ips, "ip", "gather host candidates only on this `IP or PREFIX` (repeatable)")
	fs.BoolVar(&o.noHost, "no-host", false, "do not offer host candidates")
	fs.BoolVar(&o.noSrflx, "no-srflx", false, "do not offer server-reflexive candidates")
	fs.BoolVar(&o.relayOnly, "relay-only", false, "offer relayed candidates only")
	fs.BoolVar(&o.loopback, "loopback", false, "include loopback addresses (to try it on one machine)")
	fs.BoolVar(&o.v4, "4", false, "IPv4 only")
	fs.BoolVar(&o.v6, "6", false, "IPv6 only")
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
	switch {
	case len(pos) > 0:
		return nil, usage("unexpected argument %q", pos[0])
	case o.count < 1 || o.count > 1000:
		return nil, usage("--count must be 1-1000")
	case o.timeout <= 0:
		return nil, usage("--timeout must be positive")
	case o.v4 && o.v6:
		return nil, usage("-4 and -6 exclude each other")
	case o.turnSecret != "" && (o.turnUser != "" || o.turnPass != ""):
		return nil, usage("--turn-secret excludes --turn-user/--turn-pass")
	case (o.turnUser == "") != (o.turnPass == ""):
		return nil, usage("--turn-user and --turn-pass go together")
	case len(o.turn) == 0 && (o.turnUser != "" || o.turnSecret != ""):
		return nil, usage("TURN credentials without --turn")
	case len(o.turn) > 0 && o.turnUser == "" && o.turnSecret == "":
		return nil, usage("--turn needs --turn-user and --turn-pass, or --turn-secret")
	case o.relayOnly && len(o.turn) == 0:
		return nil, usage("--relay-only needs --turn")
	case o.noHost && o.noSrflx && len(o.turn) == 0:
		return nil, usage("--no-host and --no-srflx leave nothing to offer without --turn")
	case o.noHost && len(o.stun) == 0 && len(o.turn) == 0:
		return nil, usage("--no-host leaves nothing to offer without --stun or --turn")
	}
	for _, s := range o.ips {
		if _, err := parsePrefixOrIP(s); err != nil {
			return nil, usage("--ip: %v", err)
		}
	}
	for _, s := range o.stun {
		if _, _, err := splitServer(s, 3478); err != nil {
			return nil, usage("--stun: %v", err)
		}
	}
	for _, s := range o.turn {
		var so stunOptions
		if err := parseTurnURI(s, &so); err != nil {
			return nil, usage("--turn: %v", err)
		}
	}
	return o, nil
}

// parsePrefixOrIP parses "10.0.0.0/8" or "10.1.2.3".
func parsePrefixOrIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// gatherConfig turns the options into the agent's GatherConfig, resolving
// the STUN servers.
func (o *iceOptions) gatherConfig(ctx context.Context) (ice.GatherConfig, error) {
	gc := ice.GatherConfig{
		IncludeLoopback: o.loopback,
		DisableIPv4:     o.v6,
		DisableIPv6:     o.v4,
	}
	if len(o.ips) > 0 {
		var prefixes []netip.Prefix
		for _, s := range o.ips {
			p, _ := parsePrefixOrIP(s) // checked by parseICEArgs
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

// iceCandJSON is a candidate in the JSON summary.
type iceCandJSON struct {
	Type string `json:"type"`
	Addr string `json:"addr"`
}

// icePairJSON is a selected pair in the JSON summary.
type icePairJSON struct {
	Local  iceCandJSON `json:"local"`
	Remote iceCandJSON `json:"remote"`
}

// iceSummary is the JSON summary of `icebreaker ice`.
type iceSummary struct {
	Role      string      `json:"role"`
	Local     iceCandJSON `json:"local"`
	Remote    iceCandJSON `json:"remote"`
	ConnectMS float64     `json:"connect_ms"`
	// Final is the selected pair after the pings when the controlling
	// agent moved to another one meanwhile (off a relay, say).
	Final            *icePairJSON `json:"final,omitempty"`
	Pings            int          `json:"pings"`
	Lost             int          `json:"lost"`
	RTTms            []float64    `json:"rtt_ms"`
	LocalCandidates  []string     `json:"local_candidates"`
	RemoteCandidates []string     `json:"remote_candidates"`
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
	if err != nil {
		if errors.Is(err, ice.ErrNoCandidates) && !o.loopback {
			return fmt.Errorf("%w (on one machine, add --loopback)", err)
		}
		return err
	}
	ufrag, pwd := agent.LocalCredentials()
	tok := iceToken{Role: o.role, Ufrag: ufrag, Pwd: pwd}
	var kinds []string
	for _, c := range cands {
		if o.offered(c) {
			tok.Candidates = append(tok.Candidates, c.String())
			kinds = append(kinds, c.Type.String()+" "+c.Addr.String())
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
	if _, err := fmt.Fprintln(stdout, encodeToken(tok)); err != nil {
		return fmt.Errorf("writing the token: %w", err)
	}

	line, err := readTokenLine(ctx, stdin)
	if err != nil {
		return err
	}
	peer, remotes, err := decodeToken(line)
	if err != nil {
		return err
	}
	if peer.Role == o.role {
		return fmt.Errorf("the peer's token is also an %s: run 'icebreaker ice %s' on one side and 'icebreaker ice %s' on the other", o.role, "offer", "answer")
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
		ms(took), pair.Local.Type, pair.Local.Addr, pair.Remote.Type, pair.Remote.Addr)

	sum := iceSummary{
		Role:             o.role,
		Local:            iceCandJSON{pair.Local.Type.String(), pair.Local.Addr.String()},
		Remote:           iceCandJSON{pair.Remote.Type.String(), pair.Remote.Addr.String()},
		ConnectMS:        ms(took),
		LocalCandidates:  tok.Candidates,
		RemoteCandidates: peer.Candidates,
	}
	p := &pinger{conn: conn, count: o.count, log: stderr}
	return p.run(ctx, func(rtts []time.Duration, lost int) error {
		sum.Pings, sum.Lost = o.count, lost
		sum.RTTms = []float64{}
		for _, r := range rtts {
			sum.RTTms = append(sum.RTTms, ms(r))
		}
		printRTTs(stderr, rtts, o.count, lost)
		if now, ok := agent.SelectedPair(); ok && (now.Local.Addr != pair.Local.Addr || now.Remote.Addr != pair.Remote.Addr) {
			fmt.Fprintf(stderr, "the selected pair changed to: local %s %s <-> remote %s %s\n",
				now.Local.Type, now.Local.Addr, now.Remote.Type, now.Remote.Addr)
			sum.Final = &icePairJSON{
				Local:  iceCandJSON{now.Local.Type.String(), now.Local.Addr.String()},
				Remote: iceCandJSON{now.Remote.Type.String(), now.Remote.Addr.String()},
			}
		}
		if len(rtts) == 0 {
			return fmt.Errorf("no ping over the selected pair was answered (%d sent)", o.count)
		}
		if o.json {
			b, _ := json.Marshal(sum)
			if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
				return fmt.Errorf("writing the summary: %w", err)
			}
		}
		return nil
	})
}

// readTokenLine reads one line from r. The read runs on its own goroutine
// so that ctx can end the wait; that goroutine ends when the line arrives
// or r is closed (for os.Stdin, when the process exits).
func readTokenLine(ctx context.Context, r io.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && !errors.Is(res.err, io.EOF) {
			return "", fmt.Errorf("reading the peer's token: %w", res.err)
		}
		if strings.TrimSpace(res.line) == "" {
			return "", errors.New("no token on standard input: paste the peer's token as one line")
		}
		return res.line, nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the peer's token: %w", ctx.Err())
	}
}

func printRTTs(w io.Writer, rtts []time.Duration, sent, lost int) {
	if len(rtts) == 0 {
		fmt.Fprintf(w, "%d pings sent, none answered\n", sent)
		return
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, r := range rtts {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	fmt.Fprintf(w, "%d pings, %d lost, rtt min/avg/max %.3f/%.3f/%.3f ms\n",
		sent, lost, ms(lo), ms(sum/time.Duration(len(rtts))), ms(hi))
}

// The ping exchange over the selected pair. Both sides send count pings
// and echo the peer's; each datagram is text, so it never starts with a
// byte 0-3 (RFC 7983):
//
//	"ib ping SEQ TRY"  a ping; TRY counts its retransmissions
//	"ib pong SEQ TRY"  the echo of that ping
//	"ib fin"           this side has all its answers (or gave up)
//	"ib fin got"       the same, and it has the peer's fin
//
// A side that has finished sends fin every finEvery until it has the
// peer's, and gives up waiting for it after finLinger. With both fins it
// answers every plain fin with "fin got" and leaves when finQuiet passed
// without one, so that a peer that missed its fin gets another (like TCP's
// TIME-WAIT, RFC 9293, Section 3.6.1).
const (
	pingWait  = time.Second // before a ping is sent again
	pingTries = 3           // sends of one ping before it counts as lost
	finEvery  = 200 * time.Millisecond
	finLinger = 5 * time.Second
	finQuiet  = finEvery * 3 / 2
)

// pinger runs the exchange on conn; it owns no goroutine.
type pinger struct {
	conn  net.Conn
	count int
	log   io.Writer
	wait  time.Duration // before a ping is sent again; 0 means pingWait
}

// run exchanges the pings. done is called once, when this side has its
// answers and before it says fin, so that its output is complete before
// the peer can leave; an error from done ends the exchange.
func (p *pinger) run(ctx context.Context, done func(rtts []time.Duration, lost int) error) error {
	var (
		rtts     []time.Duration
		lost     int
		seq, try = 1, 0
		sentAt   time.Time // of the outstanding ping's latest try
		finished bool
		peerFin  bool
		nextFin  time.Time
		giveUp   time.Time
		quiet    time.Time // with both fins: leave then
		buf      = make([]byte, 1500)
		wait     = p.wait
	)
	if wait == 0 {
		wait = pingWait
	}
	send := func(s string) {
		p.conn.Write([]byte(s)) // a lost datagram is retried or counted
	}
	ping := func(now time.Time) {
		try++
		sentAt = now
		send(fmt.Sprintf("ib ping %d %d", seq, try))
	}
	finish := func(now time.Time) error {
		finished = true
		if err := done(rtts, lost); err != nil {
			return err
		}
		send("ib fin")
		nextFin, giveUp, quiet = now.Add(finEvery), now.Add(finLinger), now.Add(finQuiet)
		return nil
	}
	ping(time.Now())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		switch {
		case finished && peerFin && !now.Before(quiet):
			return nil
		case finished && peerFin:
		case finished && !now.Before(giveUp):
			fmt.Fprintln(p.log, "the peer did not confirm the end of the pings; leaving")
			return nil
		case finished && !now.Before(nextFin):
			send("ib fin")
			nextFin = now.Add(finEvery)
		case !finished && !now.Before(sentAt.Add(wait)):
			if try < pingTries {
				ping(now)
				break
			}
			fmt.Fprintf(p.log, "ping %d: no answer\n", seq)
			lost++
			if seq++; seq > p.count {
				if err := finish(now); err != nil {
					return err
				}
				break
			}
			try = 0
			ping(now)
		}
		wake := sentAt.Add(wait)
		switch {
		case finished && peerFin:
			wake = quiet
		case finished:
			wake = nextFin
			if giveUp.Before(wake) {
				wake = giveUp
			}
		}
		p.conn.SetReadDeadline(wake)
		n, err := p.conn.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return fmt.Errorf("reading from the selected pair: %w", err)
		}
		f := strings.Fields(string(buf[:n]))
		switch {
		case len(f) == 3 && f[0] == "ib" && f[1] == "fin" && f[2] == "got":
			peerFin = true
		case len(f) == 2 && f[0] == "ib" && f[1] == "fin":
			peerFin = true
			if finished {
				send("ib fin got") // the peer has not got ours yet
				quiet = time.Now().Add(finQuiet)
			}
		case len(f) == 4 && f[0] == "ib" && f[1] == "ping":
			send("ib pong " + f[2] + " " + f[3])
		case len(f) == 4 && f[0] == "ib" && f[1] == "pong" && !finished:
			if f[2] != strconv.Itoa(seq) || f[3] != strconv.Itoa(try) {
				continue // a late answer to an earlier try
			}
			rtt := time.Since(sentAt)
			rtts = append(rtts, rtt)
			fmt.Fprintf(p.log, "ping %d: %.3f ms\n", seq, ms(rtt))
			if seq++; seq > p.count {
				if err := finish(time.Now()); err != nil {
					return err
				}
				continue
			}
			try = 0
			ping(time.Now())
		}
	}
}
