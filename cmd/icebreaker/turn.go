package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/icebreaker-net/icebreaker/cmd/icebreaker/internal/turncheck"
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
	rep, err := turncheck.Run(ctx, turncheck.Config{
		Server:      fmt.Sprintf("%s (%s)", net.JoinHostPort(o.stun.host, strconv.Itoa(int(o.stun.port))), o.stun.transport),
		Timeout:     o.stun.timeout,
		Peer:        o.peer,
		Count:       o.count,
		ProbePolicy: o.probePolicy,
		NoTCP:       o.noTCP,
		Resolve:     func(ctx context.Context) (netip.AddrPort, error) { return resolveServer(ctx, &o.stun) },
		Reach: func(ctx context.Context, server netip.AddrPort) (stunclient.BindingResult, error) {
			return stunBinding(ctx, &o.stun, server)
		},
		Client: func(server netip.AddrPort) (turnclient.Config, error) {
			return turnConfig(&o.turnClientOptions, server)
		},
	})
	if err != nil {
		return err
	}
	if o.json {
		if err := turncheck.WriteJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		turncheck.Print(stdout, rep)
	}
	if !rep.OK {
		return errors.New("TURN check failed")
	}
	return nil
}

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
