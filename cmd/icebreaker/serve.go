package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
)

// serveFlags maps each flag of `icebreaker serve` that overrides a
// configuration key to that key, so a bad value is reported by flag name.
var serveFlags = map[string]string{
	"listen":      "stun.listen",
	"port":        "stun.port",
	"alt-ip":      "stun.alternate_ip",
	"alt-port":    "stun.alternate_port",
	"tls-cert":    "stun.tls_cert",
	"tls-key":     "stun.tls_key",
	"tls-port":    "stun.tls_port",
	"software":    "stun.software",
	"udp-sockets": "stun.udp_sockets",
	"log-level":   "log.level",
	"log-format":  "log.format",
}

// runServe runs the STUN server until ctx is cancelled (main cancels it on
// SIGINT and SIGTERM), then closes it and returns nil.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := config.Default()
	fs := newFlagSet("serve", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker serve [flags]")
		fmt.Fprintln(stderr, "\nRuns the STUN server. Without --config it uses the built-in configuration")
		fmt.Fprintln(stderr, "(--default-config prints it, with every key documented). Flags override the file.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var (
		file       = fs.String("config", "", "read the configuration from `FILE` (YAML)")
		printDef   = fs.Bool("default-config", false, "print the built-in configuration file and exit")
		listen     = fs.String("listen", def.STUN.Listen, "`IP` to bind: 0.0.0.0, :: or a specific address (stun.listen)")
		port       = fs.Int("port", def.STUN.Port, "UDP and TCP port, 0 for a free one (stun.port)")
		altIP      = fs.String("alt-ip", "", "RFC 5780 second `IP`; needs a specific --listen (stun.alternate_ip)")
		altPort    = fs.Int("alt-port", 0, "RFC 5780 second port, 0 for port+1 (stun.alternate_port)")
		tlsCert    = fs.String("tls-cert", "", "PEM certificate `FILE`; TLS needs it and --tls-key (stun.tls_cert)")
		tlsKey     = fs.String("tls-key", "", "PEM private key `FILE` (stun.tls_key)")
		tlsPort    = fs.Int("tls-port", def.STUN.TLSPort, "TLS port (stun.tls_port)")
		software   = fs.String("software", "", "SOFTWARE attribute `TEXT`, empty for none (stun.software)")
		udpSockets = fs.Int("udp-sockets", 0, "UDP sockets per address, 0 for one per core (stun.udp_sockets)")
		logLevel   = fs.String("log-level", def.Log.Level, "debug, info, warn or error (log.level)")
		logFormat  = fs.String("log-format", def.Log.Format, "text or json (log.format)")
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *printDef {
		_, err := io.WriteString(stdout, config.DefaultYAML())
		return err
	}

	cfg := def
	if *file != "" {
		var err error
		if cfg, err = config.Load(*file); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		s := &cfg.STUN
		switch f.Name {
		case "listen":
			s.Listen = *listen
		case "port":
			s.Port = *port
		case "alt-ip":
			s.AlternateIP = *altIP
		case "alt-port":
			s.AlternatePort = *altPort
		case "tls-cert":
			s.TLSCert = *tlsCert
		case "tls-key":
			s.TLSKey = *tlsKey
		case "tls-port":
			s.TLSPort = *tlsPort
		case "software":
			s.Software = *software
		case "udp-sockets":
			s.UDPSockets = *udpSockets
		case "log-level":
			cfg.Log.Level = *logLevel
		case "log-format":
			cfg.Log.Format = *logFormat
		}
	})
	if err := cfg.Validate(); err != nil {
		if e, ok := errors.AsType[*config.Error](err); ok {
			for name, key := range serveFlags {
				if key == e.Key && set[name] {
					return fmt.Errorf("%w: --%s: %v", errUsage, name, e.Err)
				}
			}
		}
		return err
	}
	return serve(ctx, cfg, stdout, stderr)
}

// serve runs the daemon described by a validated cfg until ctx is done.
func serve(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	logger := newLogger(cfg.Log, stderr)
	scfg, err := stunConfig(cfg.STUN, logger)
	if err != nil {
		return err
	}
	srv, err := stunserver.Listen(scfg)
	if err != nil {
		return listenError(err, cfg.STUN)
	}
	defer srv.Close()

	ifaddrs := interfaceAddrs(logger)
	rfc5780 := scfg.AlternateIP.IsValid()
	fmt.Fprintln(stdout, "icebreaker serve: STUN listening")
	for _, ep := range srv.Addrs() {
		if !rfc5780 {
			ep.Role = "" // every endpoint is primary: say nothing
		}
		fmt.Fprintln(stdout, "  "+endpointLine(ep, ifaddrs))
	}

	// Serve logs its start and stop (with counters) and returns once ctx
	// is done and every goroutine has exited; Close is then a no-op.
	if err := srv.Serve(ctx); err != nil {
		return err
	}
	if err := srv.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "icebreaker serve: stopped")
	return nil
}

// listenError shortens the error of a port already in use to the address
// and a hint, e.g. "listen udp 0.0.0.0:3478: address already in use".
func listenError(err error, c config.STUN) error {
	opErr, ok := errors.AsType[*net.OpError](err)
	if !ok || !errors.Is(err, syscall.EADDRINUSE) || opErr.Addr == nil {
		return err
	}
	network, flag := strings.TrimRight(opErr.Net, "46"), "--port"
	if network == "tcp" && c.TLS() && c.TLSPort != 0 && c.TLSPort != c.Port &&
		strings.HasSuffix(opErr.Addr.String(), ":"+strconv.Itoa(c.TLSPort)) {
		network, flag = "tls", "--tls-port"
	}
	return fmt.Errorf("listen %s %s: address already in use (another server? choose a port with %s)",
		network, opErr.Addr, flag)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// stunConfig turns the validated stun section into the server's
// configuration, loading the TLS certificate if one is configured.
func stunConfig(c config.STUN, logger *slog.Logger) (stunserver.Config, error) {
	ip := c.ListenAddr()
	port := uint16(c.Port)
	sc := stunserver.Config{
		AlternateIP:    c.AlternateAddr(),
		AlternatePort:  uint16(c.AlternatePort),
		Software:       c.Software,
		UDPSockets:     c.UDPSockets,
		TCPIdleTimeout: c.TCPIdleTimeout,
		MaxTCPConns:    c.MaxTCPConns,
		Logger:         logger,
	}
	if c.UDP {
		sc.UDP = netip.AddrPortFrom(ip, port)
	}
	if c.TCP {
		sc.TCP = netip.AddrPortFrom(ip, port)
	}
	if c.TLS() {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return stunserver.Config{}, fmt.Errorf("TLS certificate (stun.tls_cert, stun.tls_key): %w", err)
		}
		sc.TLS = netip.AddrPortFrom(ip, uint16(c.TLSPort))
		sc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return sc, nil
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
