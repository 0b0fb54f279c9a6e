package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/stun/stunuri"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// runTurn dispatches `icebreaker turn SUBCOMMAND`.
func runTurn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no subcommand (want check or load)", errUsage)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, "usage: icebreaker turn check|load [flags] turn:HOST[:PORT]?transport=udp|tcp | turns:HOST[:PORT]")
		return nil
	}
	switch args[0] {
	case "check":
		return runTurnCheck(ctx, args[1:], stdout, stderr)
	case "load":
		return runTurnLoad(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown subcommand %q (want check or load)", errUsage, args[0])
}

// turnClientOptions are the server URI and the flags that `turn check`
// and `turn load` share: the credentials, --timeout and the TLS flags.
type turnClientOptions struct {
	stun       stunOptions // transport, host, port, timeout, TLS flags
	user, pass string
	secret     string
	passFlag   *secretFlag
	secretFlag *secretFlag
}

// addFlags adds the shared client flags to fs; timeoutUsage says what
// --timeout limits.
func (c *turnClientOptions) addFlags(fs *flag.FlagSet, timeoutUsage string) {
	fs.StringVar(&c.user, "user", "", "long-term credentials: user name")
	c.passFlag = addSecretFlag(fs, "pass", envTURNPassword, "long-term credentials: password")
	c.secretFlag = addSecretFlag(fs, "secret", envTURNSecret, "TURN REST API shared secret (instead of --user/--pass)")
	fs.DurationVar(&c.stun.timeout, "timeout", 10*time.Second, timeoutUsage)
	fs.BoolVar(&c.stun.insecure, "insecure", false, "turns: do not verify the server's certificate")
	fs.StringVar(&c.stun.caFile, "ca", "", "turns: also trust the PEM certificates in `FILE`")
}

// validate checks the shared client flags and parses uri, a turn: or
// turns: URI, into c.stun.
func (c *turnClientOptions) validate(uri string) error {
	var err error
	if c.pass, err = c.passFlag.resolve(c.user != ""); err != nil {
		return err
	}
	if c.secret, err = c.secretFlag.resolve(c.user == ""); err != nil {
		return err
	}
	switch {
	case c.secret != "" && (c.user != "" || c.pass != ""):
		return fmt.Errorf("%w: --secret excludes --user/--pass", errUsage)
	case (c.user == "") != (c.pass == ""):
		return fmt.Errorf("%w: --user and --pass go together", errUsage)
	case c.stun.timeout <= 0:
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	case c.stun.insecure && c.stun.caFile != "":
		return fmt.Errorf("%w: --insecure and --ca exclude each other", errUsage)
	}
	if err := parseTurnURI(uri, &c.stun); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if c.stun.transport != "tls" && (c.stun.insecure || c.stun.caFile != "") {
		return fmt.Errorf("%w: --insecure and --ca apply to turns: only", errUsage)
	}
	c.stun.network = "ip"
	c.stun.rto = stunclient.DefaultRTO
	return nil
}

// turnCheckOptions are the parsed flags of `icebreaker turn check`.
type turnCheckOptions struct {
	turnClientOptions
	peer        string
	count       int
	probePolicy bool
	noTCP       bool
	json        bool
}

// checkStep is one step's result, printed as a line or as JSON.
// A skipped step (the server does not offer what it tests) counts as OK.
type checkStep struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Skipped bool    `json:"skipped,omitempty"`
	MS      float64 `json:"ms"`
	Detail  string  `json:"detail,omitempty"`
	Error   string  `json:"error,omitempty"`
}

type checkReport struct {
	Server   string      `json:"server"`
	OK       bool        `json:"ok"`
	Steps    []checkStep `json:"steps"`
	Warnings []string    `json:"warnings,omitempty"`
}

func parseTurnCheckArgs(args []string, stderr io.Writer) (*turnCheckOptions, error) {
	fs := newFlagSet("turn check", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker turn check [flags] turn:HOST[:PORT][?transport=udp|tcp] | turns:HOST[:PORT]")
		fmt.Fprintln(stderr, "\nDiagnoses a TURN server step by step: resolve, reach (STUN Binding), authenticate,")
		fmt.Fprintln(stderr, "allocate, relay data both ways between two allocations (or to --peer, an echo server),")
		fmt.Fprintln(stderr, "then (unless --no-tcp) connect two RFC 6062 TCP allocations and relay bytes both ways;")
		fmt.Fprintln(stderr, "a server without TCP allocations (442) makes that step SKIP, which is not a failure.")
		fmt.Fprintln(stderr, "With --probe-policy it asks for permissions to loopback, private, IPv4-mapped,")
		fmt.Fprintln(stderr, "link-local and the server's own addresses, and warns about those it allows.")
		fmt.Fprintln(stderr, "Exit status 0 only if every step passed.\n\nflags:")
		fs.PrintDefaults()
	}
	o := &turnCheckOptions{}
	o.addFlags(fs, "time limit of each step")
	fs.StringVar(&o.peer, "peer", "", "UDP echo peer `IP:PORT` to relay to instead of a second allocation")
	fs.IntVar(&o.count, "count", 10, "datagrams to relay each way, for round-trip time and loss")
	fs.BoolVar(&o.probePolicy, "probe-policy", false, "ask for permissions to addresses a server should refuse (sends no data)")
	fs.BoolVar(&o.noTCP, "no-tcp", false, "skip the RFC 6062 TCP allocation step")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) != 1:
		return nil, fmt.Errorf("%w: want one turn: or turns: URI", errUsage)
	case o.count < 1 || o.count > 10000:
		return nil, fmt.Errorf("%w: --count must be 1-10000", errUsage)
	}
	if err := o.validate(pos[0]); err != nil {
		return nil, err
	}
	return o, nil
}

// parseTurnURI parses turn:HOST[:PORT]?transport=udp|tcp and turns:HOST[:PORT]
// (RFC 7065).
func parseTurnURI(s string, o *stunOptions) error {
	u, err := stunuri.Parse(s)
	if err != nil {
		return fmt.Errorf("bad TURN URI: %w", err)
	}
	if !u.IsTURN() {
		return fmt.Errorf("bad TURN URI %q: scheme must be turn or turns", s)
	}
	o.host, o.port, o.transport = u.Host, u.PortOrDefault(), u.TransportOrDefault().String()
	if u.Secure() {
		o.transport = "tls"
	}
	return nil
}

func runTurnCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseTurnCheckArgs(args, stderr)
	if err != nil {
		return err
	}
	rep := &checkReport{Server: fmt.Sprintf("%s (%s)", net.JoinHostPort(o.stun.host, strconv.Itoa(int(o.stun.port))), o.stun.transport)}
	checkTurn(ctx, o, rep)
	rep.OK = true
	for _, s := range rep.Steps {
		rep.OK = rep.OK && s.OK
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printCheck(stdout, rep)
	}
	if !rep.OK {
		return errors.New("TURN check failed")
	}
	return nil
}

func printCheck(w io.Writer, rep *checkReport) {
	fmt.Fprintf(w, "TURN check of %s\n", rep.Server)
	for _, s := range rep.Steps {
		mark, text := "PASS", s.Detail
		switch {
		case s.Skipped:
			mark = "SKIP"
		case !s.OK:
			mark, text = "FAIL", s.Error
		}
		fmt.Fprintf(w, "  %s  %-12s %9s  %s\n", mark, s.Name, fmt.Sprintf("%.1fms", s.MS), text)
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "  WARN  %s\n", wn)
	}
}

// skipStep is the error of a step that does not apply to the server: the
// step is reported as skipped, which is not a failure.
type skipStep struct{ why string }

func (e *skipStep) Error() string { return e.why }

// step runs f as a named step, recording its time and outcome.
func step(rep *checkReport, name string, f func() (string, error)) bool {
	start := time.Now()
	detail, err := f()
	s := checkStep{Name: name, OK: err == nil, MS: float64(time.Since(start).Microseconds()) / 1000, Detail: detail}
	if skip, ok := errors.AsType[*skipStep](err); ok {
		s.OK, s.Skipped, s.Detail, err = true, true, skip.why, nil
	}
	if err != nil {
		s.Error = err.Error()
	}
	rep.Steps = append(rep.Steps, s)
	return err == nil
}

func checkTurn(ctx context.Context, o *turnCheckOptions, rep *checkReport) {
	var server netip.AddrPort
	if !step(rep, "resolve", func() (string, error) {
		c, cancel := context.WithTimeout(ctx, o.stun.timeout)
		defer cancel()
		var err error
		server, err = resolveServer(c, &o.stun)
		if err != nil {
			return "", err // "cannot resolve HOST: ..."
		}
		return server.String(), nil
	}) {
		return
	}
	if !step(rep, "reach", func() (string, error) {
		c, cancel := context.WithTimeout(ctx, o.stun.timeout)
		defer cancel()
		res, err := stunBinding(c, &o.stun, server)
		if err != nil {
			return "", explainTurnError(err, server)
		}
		return fmt.Sprintf("STUN Binding answered, mapped address %s, RTT %s", res.Mapped, stunclient.FormatDuration(res.RTT)), nil
	}) {
		return
	}
	cfg, err := turnConfig(&o.turnClientOptions, server)
	if err != nil {
		step(rep, "authenticate", func() (string, error) { return "", err })
		return
	}
	var relay *turnclient.Relay
	start := time.Now()
	c, cancel := context.WithTimeout(ctx, o.stun.timeout)
	relay, err = turnclient.Allocate(c, cfg)
	cancel()
	elapsed := time.Since(start)
	se, isSTUN := errors.AsType[*stun.Error](err)
	authFailed := err != nil && (!isSTUN || se.Code == stun.CodeUnauthorized || se.Code == stun.CodeStaleNonce || errors.Is(err, stunclient.ErrNoCredentials))
	rep.Steps = append(rep.Steps, checkStep{Name: "authenticate", OK: !authFailed, MS: ms(elapsed)})
	if authFailed {
		rep.Steps[len(rep.Steps)-1].Error = explainTurnError(err, server).Error()
		return
	}
	rep.Steps[len(rep.Steps)-1].Detail = "credentials accepted"
	rep.Steps = append(rep.Steps, checkStep{Name: "allocate", OK: err == nil, MS: ms(elapsed)})
	if err != nil {
		rep.Steps[len(rep.Steps)-1].Error = explainTurnError(err, server).Error()
		return
	}
	defer relay.Close()
	rep.Steps[len(rep.Steps)-1].Detail = fmt.Sprintf("relayed address %s, lifetime %s", relay.LocalAddr(), relay.Lifetime())

	step(rep, "relay", func() (string, error) { return checkRelayData(ctx, o, cfg, relay) })
	if !o.noTCP {
		step(rep, "tcp-relay", func() (string, error) { return checkTCPRelay(ctx, o, cfg) })
	}
	if o.probePolicy {
		step(rep, "policy", func() (string, error) { return probePolicy(ctx, o, relay, server, rep) })
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func turnConfig(o *turnClientOptions, server netip.AddrPort) (turnclient.Config, error) {
	cfg := turnclient.Config{
		Server:   server.String(),
		Username: o.user, Password: o.pass,
		Secret:   o.secret,
		Software: "icebreaker " + version,
	}
	switch o.stun.transport {
	case "tcp":
		cfg.Transport = turnclient.TCP
	case "tls":
		cfg.Transport = turnclient.TLS
		tc, err := tlsConfig(&o.stun, o.stun.host)
		if err != nil {
			return cfg, err
		}
		cfg.TLSConfig = tc
	}
	return cfg, nil
}

// checkRelayData sends o.count datagrams from relay to a second
// allocation (or --peer) and back, and reports round-trip time and loss.
func checkRelayData(ctx context.Context, o *turnCheckOptions, cfg turnclient.Config, a *turnclient.Relay) (string, error) {
	c, cancel := context.WithTimeout(ctx, o.stun.timeout)
	defer cancel()
	var target netip.AddrPort
	var b *turnclient.Relay
	if o.peer != "" {
		p, err := netip.ParseAddrPort(o.peer)
		if err != nil {
			return "", fmt.Errorf("--peer: %w", err)
		}
		target = p
	} else {
		var err error
		b, err = turnclient.Allocate(c, cfg)
		if err != nil {
			return "", fmt.Errorf("second allocation: %w", explainTurnError(err, a.Server()))
		}
		defer b.Close()
		target = b.Relayed()[0]
		// Permissions both ways: B must accept A's datagrams.
		if err := b.CreatePermission(c, a.Relayed()[0].Addr()); err != nil {
			return "", fmt.Errorf("permission for the first relay on the second: %w", withForbiddenHint(explainTurnError(err, a.Server()), false))
		}
		if err := a.CreatePermission(c, target.Addr()); err != nil {
			return "", fmt.Errorf("permission for the second relay on the first: %w", withForbiddenHint(explainTurnError(err, a.Server()), false))
		}
		// The second relay echoes.
		done := make(chan struct{})
		defer func() { b.Close(); <-done }()
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, from, err := b.ReadFrom(buf)
				if err != nil {
					return
				}
				b.WriteTo(buf[:n], from)
			}
		}()
	}
	var rtts []time.Duration
	buf := make([]byte, 2048)
	to := net.UDPAddrFromAddrPort(target)
	for i := range o.count {
		if c.Err() != nil {
			break
		}
		msg := fmt.Appendf(nil, "icebreaker turn check %d", i)
		sent := time.Now()
		if _, err := a.WriteTo(msg, to); err != nil {
			return "", withForbiddenHint(explainTurnError(err, a.Server()), o.peer != "")
		}
		a.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := a.ReadFrom(buf)
			if err != nil {
				break // lost
			}
			if string(buf[:n]) == string(msg) {
				rtts = append(rtts, time.Since(sent))
				break
			}
		}
	}
	a.SetReadDeadline(time.Time{})
	lost := o.count - len(rtts)
	if len(rtts) == 0 {
		return "", fmt.Errorf("no datagram came back through the relay (%d sent): the server or a firewall drops relayed traffic", o.count)
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	st := a.Stats()
	detail := fmt.Sprintf("%d/%d datagrams back (loss %.0f%%), RTT median %s max %s, via %d Send indications and %d ChannelData",
		len(rtts), o.count, 100*float64(lost)/float64(o.count),
		stunclient.FormatDuration(rtts[len(rtts)/2]), stunclient.FormatDuration(rtts[len(rtts)-1]),
		st.SentIndications, st.SentChannelData)
	if lost > 0 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}

// tcpCheckExchanges bounds the round trips of the tcp-relay step.
const tcpCheckExchanges = 10

// checkTCPRelay tests RFC 6062 TCP allocations: two of them, over TCP (or
// TLS) control connections, the first connecting to the relayed address
// of the second, which accepts and echoes; it reports the round-trip time
// of up to tcpCheckExchanges messages. A server without TCP allocations
// (442) makes the step skipped.
func checkTCPRelay(ctx context.Context, o *turnCheckOptions, cfg turnclient.Config) (string, error) {
	c, cancel := context.WithTimeout(ctx, o.stun.timeout)
	defer cancel()
	overUDP := cfg.Transport == turnclient.UDP
	if overUDP {
		cfg.Transport = turnclient.TCP // a TCP allocation needs a stream control connection
	}
	a, err := turnclient.AllocateTCP(c, cfg)
	if se, ok := errors.AsType[*stun.Error](err); ok && se.Code == stun.CodeUnsupportedTransportProtocol {
		return "", &skipStep{"server does not offer TCP allocations (442)"}
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && overUDP && oe.Op == "dial" {
		// A UDP-only server offers no TCP allocation on this port.
		return "", &skipStep{fmt.Sprintf("no TCP listener on %s, so no TCP allocation to test (%v); check turn:...?transport=tcp to test one", cfg.Server, oe.Err)}
	}
	if err != nil {
		return "", fmt.Errorf("TCP allocation: %w", explainTurnError(err, turnServerOf(cfg)))
	}
	defer a.Close()
	b, err := turnclient.AllocateTCP(c, cfg)
	if err != nil {
		return "", fmt.Errorf("second TCP allocation: %w", explainTurnError(err, a.Server()))
	}
	if err := b.CreatePermission(c, a.Relayed().Addr()); err != nil {
		b.Close()
		return "", fmt.Errorf("permission for the first relay on the second: %w", explainTurnError(err, a.Server()))
	}

	// The second allocation accepts one connection and echoes it.
	actx, acancel := context.WithCancel(c)
	peers := make(chan netip.AddrPort, 1)
	done := make(chan error, 1)
	go func() {
		conn, peer, err := b.Accept(actx)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		peers <- peer
		_, err = io.Copy(conn, conn)
		done <- err
	}()
	defer func() { acancel(); b.Close(); <-done }()

	conn, err := a.Dial(c, b.Relayed())
	if err != nil {
		if errors.Is(err, turnclient.ErrForbidden) {
			return "", errors.New("the server forbids relaying to its own relayed addresses (403 on Connect)")
		}
		if errors.Is(err, turnclient.ErrConnectFailed) {
			return "", errors.New("the server could not connect its TCP relay to the second relayed address (447)")
		}
		return "", fmt.Errorf("Connect to the second relayed address: %w", explainTurnError(err, a.Server()))
	}
	defer conn.Close()
	if dl, ok := c.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var peer netip.AddrPort
	select {
	case peer = <-peers:
	case err := <-done:
		done <- err // for the deferred wait
		return "", fmt.Errorf("the second TCP allocation got no connection: %w", explainTurnError(err, a.Server()))
	case <-c.Done():
		return "", errors.New("the second TCP allocation got no ConnectionAttempt in time: the server does not relay TCP between its own relayed addresses")
	}
	rtts := make([]time.Duration, 0, tcpCheckExchanges)
	back := make([]byte, 64)
	for i := range min(o.count, tcpCheckExchanges) {
		msg := fmt.Appendf(nil, "icebreaker turn check tcp %d", i)
		sent := time.Now()
		if _, err := conn.Write(msg); err != nil {
			return "", fmt.Errorf("writing through the TCP relay: %w", explainTurnError(err, a.Server()))
		}
		if _, err := io.ReadFull(conn, back[:len(msg)]); err != nil {
			return "", fmt.Errorf("reading the echo through the TCP relay (%d of %d came back): %w", i, min(o.count, tcpCheckExchanges), explainTurnError(err, a.Server()))
		}
		if string(back[:len(msg)]) != string(msg) {
			return "", fmt.Errorf("the TCP relay corrupted the data: sent %q, got back %q", msg, back[:len(msg)])
		}
		rtts = append(rtts, time.Since(sent))
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return fmt.Sprintf("relayed %s connected to relayed %s (seen from %s), %d messages echoed, RTT median %s max %s",
		a.Relayed(), b.Relayed(), peer, len(rtts),
		stunclient.FormatDuration(rtts[len(rtts)/2]), stunclient.FormatDuration(rtts[len(rtts)-1])), nil
}

// turnServerOf returns cfg's server address for error messages.
func turnServerOf(cfg turnclient.Config) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(cfg.Server)
	return ap
}

// probePolicy asks for permissions (only; no data is sent) to addresses a
// TURN server should refuse to relay to, and warns about each it allows.
// A permission for the server's own address is harmless as long as the
// server drops what the relay sends to its own ports (permissions are per
// IP, not port: RFC 8656, Section 9), so there it sends one Binding
// request to the server's own port through the relay and warns only if
// the answer comes back.
func probePolicy(ctx context.Context, o *turnCheckOptions, a *turnclient.Relay, server netip.AddrPort, rep *checkReport) (string, error) {
	type target struct {
		ip   netip.Addr
		what string
		own  bool
	}
	targets := []target{
		{netip.MustParseAddr("127.0.0.1"), "loopback", false},
		{netip.MustParseAddr("::ffff:127.0.0.1"), "IPv4-mapped loopback", false},
		{netip.MustParseAddr("10.0.0.1"), "private network", false},
		{netip.MustParseAddr("169.254.169.254"), "link-local cloud metadata service", false},
	}
	own := false
	for i := range targets {
		if targets[i].ip == server.Addr() {
			targets[i].what += ", the server's own address"
			targets[i].own, own = true, true
		}
	}
	if !own {
		targets = append(targets, target{server.Addr(), "the server's own address", true})
	}
	var allowed, refused []string
	for _, t := range targets {
		c, cancel := context.WithTimeout(ctx, o.stun.timeout)
		err := a.CreatePermission(c, t.ip)
		cancel()
		if err != nil {
			se, ok := errors.AsType[*stun.Error](err)
			if !ok {
				return "", explainTurnError(err, server)
			}
			refused = append(refused, fmt.Sprintf("%s (%d)", t.ip, se.Code))
			continue
		}
		if t.own && o.stun.transport == "udp" && !relaysToItself(ctx, a, server) {
			if !t.ip.IsLoopback() && !t.ip.IsPrivate() {
				refused = append(refused, fmt.Sprintf("%s (permitted, but datagrams to port %d dropped)", t.ip, server.Port()))
				continue
			}
			// A loopback or private address is still a risk for other
			// services on that host.
			allowed = append(allowed, t.ip.String())
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("relaying to %s (%s) is ALLOWED (only the server's own port %d is dropped): an SSRF risk for other services there", t.ip, t.what, server.Port()))
			continue
		}
		allowed = append(allowed, t.ip.String())
		what := t.what
		if t.own && o.stun.transport == "udp" {
			what += "; a Binding request sent to its port through the relay was answered"
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("relaying to %s (%s) is ALLOWED: an SSRF risk", t.ip, what))
	}
	return fmt.Sprintf("%d of %d refused (%s); allowed: %s", len(refused), len(targets),
		strings.Join(refused, ", "), orNone(allowed)), nil
}

// relaysToItself sends a STUN Binding request through relay a to the
// server's own address and reports whether the answer came back (the
// server relays to its own listener), waiting at most a second.
func relaysToItself(ctx context.Context, a *turnclient.Relay, server netip.AddrPort) bool {
	req, id := bindingProbe()
	if _, err := a.WriteTo(req, net.UDPAddrFromAddrPort(server)); err != nil {
		return false
	}
	deadline := time.Now().Add(time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	a.SetReadDeadline(deadline)
	defer a.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for {
		n, _, err := a.ReadFrom(buf)
		if err != nil {
			return false
		}
		var m stun.Message
		if m.Parse(buf[:n]) == nil && m.TransactionID == id {
			return true
		}
	}
}

// bindingProbe returns a Binding request and its transaction ID.
func bindingProbe() ([]byte, stun.TransactionID) {
	id := stun.NewTransactionID()
	return stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, id)), id
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// errForbiddenPeer is the explanation of a 403 to a permission.
var errForbiddenPeer = errors.New("the server forbids relaying to this peer")

// forbiddenHint says how to get past a 403 when the peer was the
// server's own relayed address (no --peer) or the given --peer.
func forbiddenHint(peerGiven bool) string {
	if peerGiven {
		return "the server's relay policy denies that peer; on an icebreaker server allow its range with --allow-peer CIDR (turn.policy.allow_peers)"
	}
	return "the server's relay policy denies its own relayed address (by default loopback and private ranges are denied); " +
		"on an icebreaker server allow that range with --allow-peer CIDR (turn.policy.allow_peers), or give --peer IP:PORT of a UDP echo server the relay may reach"
}

// withForbiddenHint adds forbiddenHint to an explained 403.
func withForbiddenHint(err error, peerGiven bool) error {
	if errors.Is(err, errForbiddenPeer) {
		return fmt.Errorf("%w: %s", err, forbiddenHint(peerGiven))
	}
	return err
}

// plural returns "1 attempt", "2 attempts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// explainTurnError says in plain words what went wrong.
func explainTurnError(err error, server netip.AddrPort) error {
	var te *stunclient.TimeoutError
	var ae *stunclient.AlternateServerError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	se, isSTUN := errors.AsType[*stun.Error](err)
	switch {
	case errors.Is(err, stunclient.ErrNoCredentials):
		return errors.New("the server requires credentials (401): give --user and --pass, or --secret")
	case errors.As(err, &te):
		return fmt.Errorf("no reply from %s after %s (%s): the server is down, the port is wrong, or a firewall drops the traffic",
			te.Server, stunclient.FormatDuration(te.Waited), plural(te.Attempts, "attempt"))
	case errors.As(err, &ce), errors.As(err, &ue), errors.As(err, &he):
		return fmt.Errorf("the server's TLS certificate was not accepted (%v); use --ca FILE, or --insecure to skip the check", err)
	case errors.As(err, &ae):
		return fmt.Errorf("the server redirects to another server (300 ALTERNATE-SERVER): %v", err)
	case errors.Is(err, turnclient.ErrQuotaReached):
		return errors.New("the server's allocation quota for this user is reached (486)")
	case errors.Is(err, turnclient.ErrInsufficientCapacity):
		return errors.New("the server is out of capacity (508)")
	case errors.Is(err, turnclient.ErrForbidden):
		if isSTUN && se.Reason != "" {
			return fmt.Errorf("%w (403 %s)", errForbiddenPeer, se.Reason)
		}
		return fmt.Errorf("%w (403)", errForbiddenPeer)
	case isSTUN && se.Code == stun.CodeUnauthorized:
		return errors.New("the server rejected the credentials (401)")
	case isSTUN && se.Code == stun.CodeStaleNonce:
		return errors.New("the server kept answering stale nonce (438): its nonces expire too fast or its clock is wrong")
	case isSTUN:
		return fmt.Errorf("the server answered with error %d %s", se.Code, se.Reason)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no reply in time from %s", server)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("cannot connect to %s: %v", server, oe.Err)
	}
	return err
}
