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
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/stun/stunuri"
)

// resolver resolves STUN server names; tests replace it to keep DNS
// queries on loopback.
var resolver = net.DefaultResolver

// stunOptions are the parsed flags of `icebreaker stun`.
type stunOptions struct {
	transport string // udp, tcp or tls
	network   string // ip, ip4 or ip6
	timeout   time.Duration
	rto       time.Duration
	insecure  bool
	caFile    string
	json      bool
	host      string
	port      uint16
}

// runStun asks a STUN server for this host's server-reflexive address
// with a Binding request (RFC 8489, Section 3) and prints it.
func runStun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseStunArgs(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()

	server, err := resolveServer(ctx, opts)
	if err != nil {
		return err
	}
	res, err := stunBinding(ctx, opts, server)
	if err != nil {
		return explainStunError(ctx, err, server, opts.transport)
	}
	return printBinding(stdout, res, opts)
}

func parseStunArgs(args []string, stderr io.Writer) (*stunOptions, error) {
	fs := newFlagSet("stun", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker stun [flags] HOST[:PORT]")
		fmt.Fprintln(stderr, "\nSends a STUN Binding request and prints this host's address as the server sees it")
		fmt.Fprintln(stderr, "(the server-reflexive address), the local address, the server and the round-trip time.")
		fmt.Fprintln(stderr, "The port defaults to 3478, or 5349 with --transport tls.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	o := &stunOptions{}
	fs.StringVar(&o.transport, "transport", "udp", "`PROTO`: udp, tcp or tls")
	v4 := fs.Bool("4", false, "use IPv4 only")
	v6 := fs.Bool("6", false, "use IPv6 only")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long, resolution and connection included")
	fs.DurationVar(&o.rto, "rto", stunclient.DefaultRTO, "first UDP retransmission timeout; it doubles after each send (RFC 8489)")
	fs.BoolVar(&o.insecure, "insecure", false, "tls: do not verify the server's certificate")
	fs.StringVar(&o.caFile, "ca", "", "tls: also trust the PEM certificates in `FILE`")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	usage := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	switch {
	case len(pos) == 0:
		return nil, usage("missing HOST[:PORT]")
	case len(pos) > 1:
		return nil, usage("one server only, got %q", pos)
	case o.transport != "udp" && o.transport != "tcp" && o.transport != "tls":
		return nil, usage("--transport must be udp, tcp or tls, not %q", o.transport)
	case *v4 && *v6:
		return nil, usage("-4 and -6 exclude each other")
	case o.timeout <= 0:
		return nil, usage("--timeout must be positive")
	case o.rto <= 0:
		return nil, usage("--rto must be positive")
	case o.transport != "tls" && (o.insecure || o.caFile != ""):
		return nil, usage("--insecure and --ca apply to --transport tls only")
	case o.insecure && o.caFile != "":
		return nil, usage("--insecure and --ca exclude each other")
	}
	o.network = "ip"
	if *v4 {
		o.network = "ip4"
	} else if *v6 {
		o.network = "ip6"
	}
	defPort := uint16(3478)
	if o.transport == "tls" {
		defPort = 5349
	}
	if o.host, o.port, err = splitServer(pos[0], defPort); err != nil {
		return nil, usage("%v", err)
	}
	if ip, err := netip.ParseAddr(o.host); err == nil {
		if ip.Unmap().Is4() && o.network == "ip6" || !ip.Unmap().Is4() && o.network == "ip4" {
			return nil, usage("%s does not match -%s", o.host, o.network[2:])
		}
	}
	return o, nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (`icebreaker stun HOST --json`), which the flag
// package alone does not allow. After "--", everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// splitServer splits HOST[:PORT], where HOST may be a name, an IPv4
// address, or an IPv6 address (bare, or in brackets with or without a
// port).
func splitServer(s string, defPort uint16) (string, uint16, error) {
	if _, err := netip.ParseAddr(s); err == nil {
		return s, defPort, nil // an IPv4 address, or a bare IPv6 one
	}
	host, port, err := stunuri.ParseHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%w in server %q", err, s)
	}
	if port == 0 {
		port = defPort
	}
	return host, port, nil
}

// resolveServer turns the host into one address of the wanted family.
func resolveServer(ctx context.Context, o *stunOptions) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(o.host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), o.port), nil
	}
	ips, err := resolver.LookupNetIP(ctx, o.network, o.host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("cannot resolve %s: %w", o.host, err)
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("cannot resolve %s: no %s address", o.host, o.network)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), o.port), nil
}

// stunBinding runs the Binding transaction over the chosen transport.
func stunBinding(ctx context.Context, o *stunOptions, server netip.AddrPort) (stunclient.BindingResult, error) {
	cfg := stunclient.Config{
		Retransmit: stunclient.Retransmit{RTO: o.rto},
		Software:   "icebreaker " + version,
	}
	if o.transport == "udp" {
		return bindOverUDP(ctx, cfg, server)
	}
	res, err := bindOverStream(ctx, cfg, o, server, o.host)
	// Over a stream the client cannot follow ALTERNATE-SERVER itself:
	// dial the alternate once. RFC 8489, Section 10.
	var ae *stunclient.AlternateServerError
	if errors.As(err, &ae) && ae.Alternate.IsValid() {
		name := o.host
		if ae.Domain != "" {
			name = ae.Domain
		}
		res, err = bindOverStream(ctx, cfg, o, ae.Alternate, name)
		if errors.As(err, &ae) {
			err = fmt.Errorf("redirected twice: %w", err)
		}
	}
	return res, err
}

func bindOverUDP(ctx context.Context, cfg stunclient.Config, server netip.AddrPort) (stunclient.BindingResult, error) {
	// Bind to the address the route to the server uses, so the local
	// address printed is a real one. Connecting a UDP socket sends nothing.
	route, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return stunclient.BindingResult{}, fmt.Errorf("no route to %s: %w", server, err)
	}
	local := route.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	route.Close()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return stunclient.BindingResult{}, err
	}
	c, err := stunclient.New(conn, cfg)
	if err != nil {
		conn.Close()
		return stunclient.BindingResult{}, err
	}
	defer c.Close()
	return c.Binding(ctx, server)
}

func bindOverStream(ctx context.Context, cfg stunclient.Config, o *stunOptions, server netip.AddrPort, name string) (stunclient.BindingResult, error) {
	var conn net.Conn
	var err error
	d := &net.Dialer{}
	if o.transport == "tls" {
		tc, terr := tlsConfig(o, name)
		if terr != nil {
			return stunclient.BindingResult{}, terr
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", server.String())
	} else {
		conn, err = d.DialContext(ctx, "tcp", server.String())
	}
	if err != nil {
		return stunclient.BindingResult{}, fmt.Errorf("cannot connect to %s (%s): %w", server, o.transport, err)
	}
	c, err := stunclient.NewStream(conn, cfg)
	if err != nil {
		conn.Close()
		return stunclient.BindingResult{}, err
	}
	defer c.Close()
	return c.Binding(ctx, netip.AddrPort{})
}

func tlsConfig(o *stunOptions, name string) (*tls.Config, error) {
	tc := &tls.Config{
		ServerName:         strings.TrimSuffix(name, "."),
		InsecureSkipVerify: o.insecure, // the user asked for it with --insecure
		MinVersion:         tls.VersionTLS12,
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca: no PEM certificate in %s", o.caFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// explainStunError turns a failed Binding into one line for people.
func explainStunError(ctx context.Context, err error, server netip.AddrPort, transport string) error {
	var te *stunclient.TimeoutError
	var se *stun.Error
	var ae *stunclient.AlternateServerError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("no response from %s (%s) in %s (%d %s)", te.Server, transport,
			stunclient.FormatDuration(te.Waited), te.Attempts, pluralWord(te.Attempts, "attempt"))
	case errors.As(err, &ae):
		return fmt.Errorf("%s (%s): %w", server, transport, err)
	case errors.As(err, &se):
		msg := fmt.Sprintf("%s (%s) answered with error %d", server, transport, se.Code)
		if se.Reason != "" {
			msg += " " + se.Reason
		}
		if errors.Is(err, stunclient.ErrNoCredentials) {
			msg += " (it requires credentials)"
		}
		return errors.New(msg)
	case errors.Is(err, stunclient.ErrNoMappedAddress), errors.Is(err, stunclient.ErrUnknownAttribute),
		errors.Is(err, stun.ErrIntegrity), errors.Is(err, stun.ErrMalformed), errors.Is(err, stun.ErrAttrNotFound):
		return fmt.Errorf("malformed response from %s (%s): %w", server, transport, err)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted while waiting for %s (%s)", server, transport)
	}
	return err
}

func pluralWord(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}

// stunJSON is the --json output.
type stunJSON struct {
	Mapped    string  `json:"mapped"`
	Local     string  `json:"local"`
	Server    string  `json:"server"`
	Transport string  `json:"transport"`
	RTTms     float64 `json:"rtt_ms"`
}

func printBinding(w io.Writer, res stunclient.BindingResult, o *stunOptions) error {
	ms := float64(res.RTT) / float64(time.Millisecond)
	if o.json {
		enc := json.NewEncoder(w)
		return enc.Encode(stunJSON{
			Mapped:    res.Mapped.String(),
			Local:     res.Local.String(),
			Server:    res.Server.String(),
			Transport: o.transport,
			RTTms:     math.Round(ms*1000) / 1000,
		})
	}
	rtt := fmt.Sprintf("%.1fms", ms)
	if ms < 1 {
		rtt = fmt.Sprintf("%.3fms", ms)
	}
	_, err := fmt.Fprintf(w, "mapped %s\nlocal  %s\nserver %s (%s)\nrtt    %s\n",
		res.Mapped, res.Local, res.Server, o.transport, rtt)
	return err
}
