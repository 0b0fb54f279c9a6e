package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/internal/icepage"
	"github.com/icebreaker-net/icebreaker/internal/iceservers"
	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/internal/metrics"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/wormhole/mailbox"
)

// serveEnviron returns the environment `icebreaker serve` reads its
// ICEBREAKER_* overrides from; tests replace it.
var serveEnviron = os.Environ

// listFlag is a repeatable string flag: each use adds one item.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// serveFlags maps each flag of `icebreaker serve` that overrides a
// configuration key to that key, so a bad value is reported by flag name.
var serveFlags = map[string]string{
	"listen":           "listen",
	"port":             "listen",
	"tls-port":         "tls.listen",
	"tls-cert":         "tls.cert",
	"tls-key":          "tls.key",
	"udp-sockets":      "udp.sockets",
	"alt-ip":           "stun.alternate_ip",
	"alt-port":         "stun.alternate_port",
	"software":         "stun.software",
	"no-turn":          "turn.enabled",
	"realm":            "turn.realm",
	"user":             "turn.users",
	"user-db":          "turn.user_db",
	"rest-secret":      "turn.rest_secrets",
	"relay-ip":         "turn.relay_ip",
	"external-ip":      "turn.external_ip",
	"relay-ports":      "turn.relay_ports",
	"loose-channels":   "turn.loose_channels",
	"allow-peer":       "turn.policy.allow_peers",
	"deny-peer":        "turn.policy.deny_peers",
	"log-level":        "log.level",
	"log-format":       "log.format",
	"metrics":          "metrics.listen",
	"rendezvous":       "rendezvous.listen",
	"transit-relay":    "rendezvous.transit_listen",
	"rendezvous-db":    "rendezvous.db",
	"motd":             "rendezvous.motd",
	"admin":            "admin.listen",
	"drain-timeout":    "drain.timeout",
	"alternate-server": "drain.alternate_server",
}

// serveOptions holds the values of the flags of `icebreaker serve`.
type serveOptions struct {
	file                                            string
	printDefault, noTURN, loose                     bool
	listen, users, secrets, relayIPs, externalIPs   listFlag
	allowPeers, denyPeers                           listFlag
	port, tlsPort, altPort, udpSockets              int
	tlsCert, tlsKey, altIP, software, realm, userDB string
	relayPorts, logLevel, logFormat, metrics        string
	rendezvous, transit, rendezvousDB, motd         string
	admin, alternate, userFile, secretFile          string
	drainTimeout                                    time.Duration
}

func serveFlagSet(o *serveOptions, stderr io.Writer) *flag.FlagSet {
	def := config.Default()
	fs := newFlagSet("serve", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker serve [flags]")
		fmt.Fprintln(stderr, "\nRuns the STUN and TURN server, and the magic-wormhole rendezvous (mailbox")
		fmt.Fprintln(stderr, "ws://HOST:4000/v1, transit relay tcp:HOST:4001). Without --config it uses the built-in")
		fmt.Fprintln(stderr, "configuration (--default-config prints it, with every key documented).")
		fmt.Fprintln(stderr, "ICEBREAKER_* environment variables override the file (ICEBREAKER_TURN_REALM")
		fmt.Fprintln(stderr, "sets turn.realm), and flags override both; a flag given for a list replaces it.")
		fmt.Fprintln(stderr, "Add TURN users with 'icebreaker user add NAME'.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.file, "config", "", "read the configuration from `FILE` (YAML)")
	fs.BoolVar(&o.printDefault, "default-config", false, "print the built-in configuration file and exit")
	fs.Var(&o.listen, "listen", "`ADDR` to serve UDP and TCP on, IP or IP:PORT; repeatable (listen, default 0.0.0.0:3478)")
	fs.IntVar(&o.port, "port", config.DefaultPort, "UDP and TCP port of every listen address, 0 for a free one (listen)")
	fs.IntVar(&o.tlsPort, "tls-port", config.DefaultTLSPort, "TLS port of every TLS address (tls.listen)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `FILE`; TLS needs it and --tls-key (tls.cert)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `FILE` (tls.key)")
	fs.IntVar(&o.udpSockets, "udp-sockets", 0, "UDP sockets per address, 0 for one per core (udp.sockets)")
	fs.StringVar(&o.altIP, "alt-ip", "", "RFC 5780 second `IP`; needs one specific --listen (stun.alternate_ip)")
	fs.IntVar(&o.altPort, "alt-port", 0, "RFC 5780 second port, 0 for port+1 (stun.alternate_port)")
	fs.StringVar(&o.software, "software", "", "SOFTWARE attribute `TEXT`, empty for none (stun.software)")
	fs.BoolVar(&o.noTURN, "no-turn", false, "serve STUN only (turn.enabled: false)")
	fs.StringVar(&o.realm, "realm", def.TURN.Realm, "TURN `REALM` (turn.realm)")
	fs.Var(&o.users, "user", "static TURN user `NAME:PASSWORD`; repeatable (turn.users; visible in the process list: prefer --user-file or $ICEBREAKER_TURN_USERS)")
	fs.StringVar(&o.userDB, "user-db", "", "user store `FILE`, \"none\" for no store (turn.user_db)")
	fs.Var(&o.secrets, "rest-secret", "TURN REST API `SECRET`; repeatable, the first signs (turn.rest_secrets; visible in the process list: prefer --rest-secret-file or $ICEBREAKER_TURN_REST_SECRETS)")
	fs.StringVar(&o.secretFile, "rest-secret-file", "", "TURN REST API secrets from `FILE`, one per line, the first signs; read again on reload (turn.rest_secrets)")
	fs.StringVar(&o.userFile, "user-file", "", "static TURN users from `FILE`, one NAME:PASSWORD per line; read again on reload (turn.users)")
	fs.Var(&o.relayIPs, "relay-ip", "relay bind `IP`, one per family; repeatable (turn.relay_ip)")
	fs.Var(&o.externalIPs, "external-ip", "public `IP` or PUBLIC/PRIVATE behind a 1:1 NAT; repeatable (turn.external_ip)")
	fs.StringVar(&o.relayPorts, "relay-ports", def.TURN.RelayPorts, "relay port `RANGE` MIN-MAX (turn.relay_ports)")
	fs.BoolVar(&o.loose, "loose-channels", false, "accept channels 0x5000-0x7FFF too (turn.loose_channels)")
	fs.Var(&o.allowPeers, "allow-peer", "peer `CIDR` to allow despite the built-in denials; repeatable (turn.policy.allow_peers)")
	fs.Var(&o.denyPeers, "deny-peer", "peer `CIDR` to deny; repeatable (turn.policy.deny_peers)")
	fs.StringVar(&o.logLevel, "log-level", def.Log.Level, "debug, info, warn or error (log.level)")
	fs.StringVar(&o.logFormat, "log-format", def.Log.Format, "text or json (log.format)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://`IP:PORT`/metrics; off by default (metrics.listen)")
	fs.StringVar(&o.rendezvous, "rendezvous", def.Rendezvous.Listen, "magic-wormhole mailbox `ADDR` (ws://ADDR/v1), IP or IP:PORT, or off (rendezvous.listen)")
	fs.StringVar(&o.transit, "transit-relay", def.Rendezvous.TransitListen, "magic-wormhole transit relay `ADDR`, or off (rendezvous.transit_listen)")
	fs.StringVar(&o.rendezvousDB, "rendezvous-db", "", "mailbox database `FILE`, \"none\" for memory only (rendezvous.db)")
	fs.StringVar(&o.motd, "motd", "", "rendezvous message of the day `TEXT` (rendezvous.motd)")
	fs.StringVar(&o.admin, "admin", "", "admin endpoint: socket `PATH`, loopback IP:PORT or none (admin.listen; default admin.sock beside the user store)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 0, "on SIGTERM, refuse new allocations and wait up to `D` for the existing ones (drain.timeout; 0 stops at once)")
	fs.StringVar(&o.alternate, "alternate-server", "", "while draining, send new allocations to `IP:PORT` with 300 Try Alternate (drain.alternate_server)")
	return fs
}

// runServe runs the server until ctx is cancelled (main cancels it on
// SIGINT and SIGTERM), then closes it and returns nil.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o serveOptions
	fs := serveFlagSet(&o, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.printDefault {
		_, err := io.WriteString(stdout, config.DefaultYAML())
		return err
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	load := func() (config.Config, []string, error) { return o.load(set) }
	cfg, unknownEnv, err := load()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Log.SlogLevel())
	logger := newLogger(cfg.Log, level, stderr)
	for _, w := range unknownEnv {
		logger.Warn(w)
	}
	return serve(ctx, cfg, &reloader{
		load:   func() (config.Config, error) { c, _, err := load(); return c, err },
		level:  level,
		logger: logger,
	}, stdout)
}

// load reads the configuration: the file, the environment and the flags
// that were set, validated. It also returns the warnings about unknown
// ICEBREAKER_* variables.
func (o *serveOptions) load(set map[string]bool) (config.Config, []string, error) {
	cfg, src, err := config.Read(o.file, serveEnviron())
	if err != nil {
		return cfg, nil, err
	}
	if err := o.apply(&cfg, set); err != nil {
		return cfg, nil, err
	}
	if err := cfg.Validate(); err != nil {
		if e, ok := errors.AsType[*config.Error](err); ok {
			for _, name := range slices.Sorted(maps.Keys(serveFlags)) {
				key := serveFlags[name]
				if set[name] && config.Covers(key, e.Key) {
					msg := e.Err.Error()
					if strings.Contains(strings.TrimPrefix(e.Key, key), ".") {
						msg = e.Key + ": " + msg
					}
					return cfg, nil, fmt.Errorf("%w: --%s: %s", errUsage, name, msg)
				}
			}
		}
		return cfg, nil, src.Blame(err)
	}
	return cfg, src.UnknownEnv, nil
}

// apply writes the flags that were set into cfg.
func (o *serveOptions) apply(cfg *config.Config, set map[string]bool) error {
	for _, p := range []struct {
		name string
		port int
	}{{"port", o.port}, {"tls-port", o.tlsPort}} { // withPort needs them; Validate checks alt-port
		if set[p.name] && (p.port < 0 || p.port > 65535) {
			return fmt.Errorf("%w: --%s: %d is not a port number (0-65535)", errUsage, p.name, p.port)
		}
	}
	list := func(name string, dst *[]string, v listFlag) {
		if set[name] {
			*dst = append([]string(nil), v...)
		}
	}
	list("listen", &cfg.Listen, o.listen)
	if set["port"] {
		cfg.Listen = withPort(cfg.Listen, config.DefaultPort, o.port)
	}
	if set["tls-port"] {
		if len(cfg.TLS.Listen) == 0 {
			// Derived from listen: make it explicit with the new port.
			for _, s := range cfg.Listen {
				if ap, err := config.ParseListen(s, config.DefaultPort); err == nil {
					if ip := ap.Addr().String(); !slices.Contains(cfg.TLS.Listen, ip) {
						cfg.TLS.Listen = append(cfg.TLS.Listen, ip)
					}
				}
			}
		}
		cfg.TLS.Listen = withPort(cfg.TLS.Listen, config.DefaultTLSPort, o.tlsPort)
	}
	t := &cfg.TURN
	for _, f := range []struct {
		name string
		dst  *string
		v    string
	}{
		{"tls-cert", &cfg.TLS.Cert, o.tlsCert}, {"tls-key", &cfg.TLS.Key, o.tlsKey},
		{"alt-ip", &cfg.STUN.AlternateIP, o.altIP}, {"software", &cfg.STUN.Software, o.software},
		{"realm", &t.Realm, o.realm}, {"user-db", &t.UserDB, o.userDB}, {"relay-ports", &t.RelayPorts, o.relayPorts},
		{"log-level", &cfg.Log.Level, o.logLevel}, {"log-format", &cfg.Log.Format, o.logFormat},
		{"metrics", &cfg.Metrics.Listen, o.metrics},
		{"rendezvous", &cfg.Rendezvous.Listen, o.rendezvous}, {"transit-relay", &cfg.Rendezvous.TransitListen, o.transit},
		{"rendezvous-db", &cfg.Rendezvous.DB, o.rendezvousDB}, {"motd", &cfg.Rendezvous.MOTD, o.motd},
		{"admin", &cfg.Admin.Listen, o.admin}, {"alternate-server", &cfg.Drain.AlternateServer, o.alternate},
	} {
		if set[f.name] {
			*f.dst = f.v
		}
	}
	if set["alt-port"] {
		cfg.STUN.AlternatePort = o.altPort
	}
	if set["drain-timeout"] {
		cfg.Drain.Timeout = o.drainTimeout
	}
	if set["udp-sockets"] {
		cfg.UDP.Sockets = o.udpSockets
	}
	if set["no-turn"] {
		t.Enabled = !o.noTURN
	}
	if set["loose-channels"] {
		t.LooseChannels = o.loose
	}
	users, setUsers, err := listOrFile("user", o.users, set, o.userFile)
	if err != nil {
		return err
	}
	secrets, setSecrets, err := listOrFile("rest-secret", o.secrets, set, o.secretFile)
	if err != nil {
		return err
	}
	if setUsers {
		t.Users = nil
		for _, u := range users {
			name, pw, ok := strings.Cut(u, ":")
			if !ok {
				return fmt.Errorf("%w: --user: %q is not NAME:PASSWORD", errUsage, u)
			}
			t.Users = append(t.Users, config.User{Username: name, Password: pw})
		}
	}
	if setSecrets {
		t.RESTSecrets = slices.Clone(secrets)
	}
	list("relay-ip", &t.RelayIP, o.relayIPs)
	list("external-ip", &t.ExternalIP, o.externalIPs)
	list("allow-peer", &t.Policy.AllowPeers, o.allowPeers)
	list("deny-peer", &t.Policy.DenyPeers, o.denyPeers)
	return nil
}

// listOrFile returns the list of the repeatable flag --name, or the lines
// of the file of --name-file, and whether either was given.
func listOrFile(name string, list listFlag, set map[string]bool, file string) ([]string, bool, error) {
	if !set[name+"-file"] {
		return list, set[name], nil
	}
	if set[name] {
		return nil, false, fmt.Errorf("%w: --%s and --%s-file exclude each other", errUsage, name, name)
	}
	lines, err := readListFile(file)
	if err != nil {
		return nil, false, fmt.Errorf("--%s-file: %w", name, err)
	}
	return lines, true, nil
}

// withPort returns addrs (IP or IP:PORT) with every port set to port; an
// entry that does not parse is kept for Validate to report.
func withPort(addrs []string, def uint16, port int) []string {
	out := make([]string, 0, len(addrs))
	for _, s := range addrs {
		ap, err := config.ParseListen(s, def)
		if err != nil {
			out = append(out, s)
			continue
		}
		out = append(out, netip.AddrPortFrom(ap.Addr(), uint16(port)).String())
	}
	return out
}

// serve runs the daemon described by a validated cfg until ctx is done,
// a SIGTERM stops it, or a drain ends; rl (with its load, level and logger
// set) reloads it on SIGHUP.
func serve(ctx context.Context, cfg config.Config, rl *reloader, stdout io.Writer) error {
	logger := rl.logger
	rl.cur = cfg
	ifaddrs := interfaceAddrs(logger)
	var tr *turnRelay
	var handler stunserver.Handler
	if cfg.TURN.Enabled {
		var err error
		if tr, err = newTURNRelay(cfg, ifaddrs, logger); err != nil {
			return err
		}
		defer tr.Close()
		handler = tr.server
	}
	rl.tr = tr
	if cfg.TLS.Enabled() {
		var err error
		if rl.certs, err = newCertLoader(cfg.TLS.Cert, cfg.TLS.Key, logger); err != nil {
			return err
		}
	}
	scfgs, err := stunConfigs(cfg, handler, rl.certs, logger)
	if err != nil {
		return err
	}
	var servers []*stunserver.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	var endpoints []stunserver.Endpoint
	for _, sc := range scfgs {
		srv, err := stunserver.Listen(sc)
		if err != nil {
			return listenError(err, "choose a port with --port, or --tls-port for TLS")
		}
		servers = append(servers, srv)
		endpoints = append(endpoints, srv.Addrs()...)
	}
	// Every listener of the daemon goes into own: the relay must never
	// reach one of them.
	var own ownListeners
	for _, ep := range endpoints {
		own.add(ep.Addr)
	}
	var secret *iceservers.Secret
	if tr != nil {
		secret = tr.mintSecret
	}
	rv, err := newRendezvous(cfg, endpoints, secret, logger)
	if err != nil {
		return err
	}
	if rv != nil {
		defer rv.close()
		for _, ep := range rv.endpoints {
			own.add(ep.Addr)
		}
	}
	var ms *metricsServer
	if ap := cfg.Metrics.Addr(); ap.IsValid() {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", listenError(err, "choose another address with --metrics"))
		}
		ms = newMetricsServer(ln, func() []metrics.Metric { return serveMetrics(servers, tr, rv) }, logger)
		defer ms.stop() // before the servers' deferred Close: last in, first out
		own.add(ln.Addr().(*net.TCPAddr).AddrPort())
	}
	if tr != nil {
		tr.setOwn(own)
	}
	d := newDaemon(logger, servers, endpoints, tr, rl)
	if ms != nil {
		addHealth(ms.mux, d)
	}
	adminLn, err := listenAdmin(cfg.Admin)
	if err != nil {
		if cfg.Admin.Listen != "" {
			return fmt.Errorf("admin.listen: %w", err)
		}
		logger.Warn("no admin endpoint (status, sessions, reload and drain need it; set admin.listen)", "err", err)
	}

	sigs := notifySignals()
	defer signal.Stop(sigs) // run stops it too; this covers the returns before
	rfc5780 := cfg.STUN.AlternateIP != ""
	if tr != nil {
		fmt.Fprintln(stdout, "icebreaker serve: STUN and TURN listening")
	} else {
		fmt.Fprintln(stdout, "icebreaker serve: STUN listening (TURN is off)")
	}
	for _, ep := range endpoints {
		if !rfc5780 {
			ep.Role = "" // every endpoint is primary: say nothing
		}
		fmt.Fprintln(stdout, "  "+endpointLine(ep, ifaddrs))
	}
	if rv != nil {
		for _, ep := range rv.endpoints {
			if ep.Network == "transit" {
				fmt.Fprintln(stdout, "  transit relay "+strings.TrimSpace(strings.TrimPrefix(endpointLine(ep, ifaddrs), "transit")))
				continue
			}
			line := strings.TrimSpace(strings.TrimPrefix(endpointLine(ep, ifaddrs), ep.Network))
			fmt.Fprintln(stdout, "  rendezvous "+strings.Replace(line, ep.Addr.String(), ep.Network+"://"+ep.Addr.String()+mailbox.Path, 1))
			if rv.testPage {
				scheme := map[string]string{"ws": "http", "wss": "https"}[ep.Network]
				fmt.Fprintln(stdout, "  ICE test page "+strings.Replace(line, ep.Addr.String(), scheme+"://"+ep.Addr.String()+icepage.Path+"?token=TOKEN", 1)+" (TOKEN: rendezvous.test_page.token)")
			}
		}
	}
	if ms != nil {
		fmt.Fprintf(stdout, "  metrics http://%s/metrics\n", ms.ln.Addr())
	}
	if adminLn != nil {
		fmt.Fprintf(stdout, "  admin %s (icebreaker status, sessions, reload, drain)\n", adminLn.Addr())
	}
	if tr != nil {
		tr.announce(ctx, stdout, bannerWarn(cfg.Log, logger, stdout))
	}

	// Serve logs its start and stop (with counters) and returns once ctx
	// is done and every goroutine has exited; Close is then a no-op.
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, s := range servers {
		wg.Go(func() {
			if errs[i] = s.Serve(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	var rvErr error // read after wg.Wait
	if rv != nil {
		wg.Go(func() {
			if rvErr = rv.run(ctx); rvErr != nil {
				cancel()
			}
		})
	}
	if ms != nil {
		ms.start()
	}
	var admin *adminServer
	if adminLn != nil {
		admin = startAdmin(adminLn, adminHandler(ctx, d), logger)
	}
	wg.Go(func() { d.run(ctx, cancel, sigs) })
	wg.Wait()
	if admin != nil {
		admin.stop()
	}
	if ms != nil {
		ms.stop()
	}
	for _, s := range servers {
		s.Close()
	}
	if rv != nil {
		if err := rv.close(); err != nil {
			return err
		}
	}
	if tr != nil {
		if err := tr.Close(); err != nil {
			return err
		}
	}
	if err := errors.Join(append(errs, rvErr)...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "icebreaker serve: stopped")
	return nil
}

// listenError shortens the error of a port already in use to the address
// and a hint, e.g. "listen udp 0.0.0.0:3478: address already in use
// (another server? HINT)".
func listenError(err error, hint string) error {
	opErr, ok := errors.AsType[*net.OpError](err)
	if !ok || !errors.Is(err, syscall.EADDRINUSE) || opErr.Addr == nil {
		return err
	}
	return fmt.Errorf("listen %s %s: address already in use (another server? %s)",
		strings.TrimRight(opErr.Net, "46"), opErr.Addr, hint)
}

// newLogger returns the daemon's logger in the configured format, at the
// level of level (which a reload changes).
func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// stunConfigs turns the validated configuration into one server per
// listen address (UDP and TCP) and one per TLS address when certs (the
// TLS certificate) is not nil. Every server hands non-Binding
// messages to handler (nil: TURN is off).
func stunConfigs(cfg config.Config, handler stunserver.Handler, certs *certLoader, logger *slog.Logger) ([]stunserver.Config, error) {
	// One per-IP limiter for every TCP and TLS listener: a client address
	// holds tcp.conns_per_ip on all of them together. Without either
	// limit there is none (nil limits nothing).
	var perIP *iplimit.Limiter
	if cfg.TCP.ConnsPerIP > 0 || cfg.TCP.TLSHandshakesPerIP > 0 {
		var err error
		perIP, err = iplimit.New(iplimit.Config{MaxConns: cfg.TCP.ConnsPerIP, Rate: float64(cfg.TCP.TLSHandshakesPerIP)})
		if err != nil {
			return nil, fmt.Errorf("tcp.conns_per_ip, tcp.tls_handshakes_per_ip: %w", err)
		}
	}
	base := stunserver.Config{
		Software:       cfg.STUN.Software,
		UDPSockets:     cfg.UDP.Sockets,
		TCPIdleTimeout: cfg.TCP.IdleTimeout,
		MaxTCPConns:    cfg.TCP.MaxConns,
		PerIP:          perIP,
		MessageTimeout: cfg.TCP.MessageTimeout,
		Handler:        handler,
		Logger:         logger,
	}
	var out []stunserver.Config
	if cfg.UDP.Enabled || cfg.TCP.Enabled {
		for _, ap := range cfg.ListenAddrs() {
			sc := base
			if cfg.UDP.Enabled {
				sc.UDP = ap
				// Validate allows RFC 5780 only with one listen address.
				sc.AlternateIP = cfg.STUN.AlternateAddr()
				sc.AlternatePort = uint16(cfg.STUN.AlternatePort)
			}
			if cfg.TCP.Enabled {
				sc.TCP = ap
			}
			out = append(out, sc)
		}
	}
	if certs != nil {
		tc := &tls.Config{GetCertificate: certs.getCertificate, MinVersion: tls.VersionTLS12}
		for _, ap := range cfg.TLSAddrs() {
			sc := base
			sc.TLS, sc.TLSConfig = ap, tc
			out = append(out, sc)
		}
	}
	return out, nil
}

// interfaceAddrs lists this host's IP addresses, for telling the user where
// a wildcard listener can be reached.
func interfaceAddrs(logger *slog.Logger) []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		logger.Warn("cannot list interface addresses", "err", err)
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// endpointLine describes one listening endpoint, e.g.
// "udp  0.0.0.0:3478 (reachable at 127.0.0.1:3478, 10.0.0.5:3478)".
func endpointLine(ep stunserver.Endpoint, ifaddrs []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %s", ep.Network, ep.Addr)
	if ep.Role != "" {
		b.WriteString(" " + ep.Role)
	}
	if r := reachable(ep.Addr, ifaddrs); len(r) > 0 {
		b.WriteString(" (reachable at ")
		for i, a := range r {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(a.String())
		}
		b.WriteString(")")
	}
	return b.String()
}

// reachable lists the addresses at which a wildcard listener at l accepts
// traffic: the host's IPv4 addresses for 0.0.0.0, and IPv6 and IPv4 for ::
// (a dual-stack socket). IPv6 link-local addresses are left out: they need
// a zone to be used. For a specific address it returns nil.
func reachable(l netip.AddrPort, ifaddrs []netip.Addr) []netip.AddrPort {
	ip := l.Addr()
	if !ip.IsUnspecified() {
		return nil
	}
	var out []netip.AddrPort
	for _, a := range ifaddrs {
		switch {
		case a.Is4():
		case ip.Is4():
			continue
		case a.IsLinkLocalUnicast():
			continue
		}
		out = append(out, netip.AddrPortFrom(a, l.Port()))
	}
	return out
}
