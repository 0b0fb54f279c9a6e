// Package config is the icebreaker daemon's configuration: its Go form, the
// built-in default (default.yaml, embedded, which documents every key and
// the coturn option it replaces), a strict YAML reader, and the ICEBREAKER_*
// environment variables that override the file.
//
// Strict means that an unknown key, a key given twice, a value of the wrong
// type and an out-of-range value are all errors, and every error names the
// dotted key (for example "turn.realm", or "turn.users[1].password" inside
// a list) and where it was set: the file and line, or the environment
// variable. A key left out of a file keeps its default value; so does a key
// given with an empty (null) value.
//
// The layers, each overriding the one before: Default, the file (Read, or
// Parse for YAML text), the environment (Read), and whatever the caller
// changes afterwards (command-line flags); Validate checks the result.
//
// Sections group keys by what they configure: the listeners (listen, udp,
// tcp, tls), the STUN Binding service (stun), the TURN relay (turn), the
// magic-wormhole rendezvous (rendezvous), the Prometheus metrics endpoint
// (metrics) and the log (log).
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

//go:embed default.yaml
var defaultYAML string

// DefaultYAML returns the text of the built-in default configuration: a
// commented YAML file that documents every key. Parsing it gives Default().
func DefaultYAML() string { return defaultYAML }

// Default ports (RFC 8489, Section 18.6: "stun"/"turn" 3478, "stuns"/"turns"
// 5349).
const (
	DefaultPort    = 3478
	DefaultTLSPort = 5349
)

// Config is the whole daemon configuration. A Config is a plain value, but
// its lists are slices, which a copy shares: give a copy a new slice
// (slices.Clone) before changing a list's elements. It is safe for
// concurrent reads. Its zero value is not a valid configuration: start from
// Default, Parse or Read.
type Config struct {
	// Listen lists the addresses served over UDP and TCP, each "IP:PORT"
	// or "IP" (port 3478). "0.0.0.0" is every IPv4 address; "::" every
	// IPv6 and IPv4 address.
	Listen     []string   `yaml:"listen"`
	UDP        UDP        `yaml:"udp"`
	TCP        TCP        `yaml:"tcp"`
	TLS        TLS        `yaml:"tls"`
	STUN       STUN       `yaml:"stun"`
	TURN       TURN       `yaml:"turn"`
	Rendezvous Rendezvous `yaml:"rendezvous"`
	Metrics    Metrics    `yaml:"metrics"`
	Log        Log        `yaml:"log"`
	Admin      Admin      `yaml:"admin"`
	Drain      Drain      `yaml:"drain"`
}

// UDP configures the UDP listeners.
type UDP struct {
	Enabled bool `yaml:"enabled"`
	Sockets int  `yaml:"sockets"` // SO_REUSEPORT sockets per address; 0 = one per CPU core
}

// TCP configures the TCP listeners, and the connection limits that TLS
// listeners share.
type TCP struct {
	Enabled     bool          `yaml:"enabled"`
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	MaxConns    int           `yaml:"max_conns"` // TCP and TLS connections together, per listen address
	// ConnsPerIP bounds the TCP and TLS connections one client address
	// (an IPv6 /64) holds at once on all listeners together; 0 = no limit.
	ConnsPerIP int `yaml:"conns_per_ip"`
	// TLSHandshakesPerIP bounds the TLS handshakes one client address
	// starts per second (a burst of as many); 0 = no limit.
	TLSHandshakesPerIP int `yaml:"tls_handshakes_per_ip"`
	// MessageTimeout bounds the time one message takes to arrive whole.
	MessageTimeout time.Duration `yaml:"message_timeout"`
}

// TLS configures the TLS listeners, which serve only when Cert and Key
// are set.
type TLS struct {
	// Listen lists "IP:PORT" or "IP" (port 5349); empty means every IP of
	// Config.Listen at port 5349.
	Listen []string `yaml:"listen"`
	Cert   string   `yaml:"cert"` // PEM certificate chain file
	Key    string   `yaml:"key"`  // PEM private key file
}

// STUN configures the STUN Binding service (RFC 8489) and its RFC 5780
// extension.
type STUN struct {
	AlternateIP   string `yaml:"alternate_ip"`   // RFC 5780 second IP; "" = off
	AlternatePort int    `yaml:"alternate_port"` // 0 = the listen port + 1
	Software      string `yaml:"software"`       // "" = no SOFTWARE attribute
}

// Metrics configures the Prometheus metrics endpoint, which is off unless
// Listen is set.
type Metrics struct {
	// Listen is the "IP:PORT" of the HTTP endpoint that serves
	// /metrics; "" means no endpoint.
	Listen string `yaml:"listen"`
}

// Log configures the daemon's structured log, written to stderr.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// Default returns the built-in configuration, the same as parsing
// DefaultYAML(): STUN and TURN on UDP and TCP port 3478 of every IPv4
// address, TLS on 5349 once a certificate is configured, realm
// "icebreaker" with the users of the embedded user store, the built-in
// relay policy, info-level text logs.
func Default() Config {
	return Config{
		Listen: []string{"0.0.0.0:3478"},
		UDP:    UDP{Enabled: true},
		TCP: TCP{Enabled: true, IdleTimeout: 30 * time.Second, MaxConns: 10000,
			ConnsPerIP: 200, TLSHandshakesPerIP: 20, MessageTimeout: 10 * time.Second},
		TURN: TURN{
			Enabled:    true,
			Realm:      "icebreaker",
			NonceTTL:   10 * time.Minute,
			RelayPorts: "49152-65535",
			Lifetime:   Lifetime{Default: 600 * time.Second, Max: 3600 * time.Second},
			Quotas: Quotas{AllocationsPerUser: 10, PermissionsPerAllocation: 128, ErrorRatePerIP: 50,
				ConnectsPerAllocation: 8, ConnectsPerUser: 32, TCPConnectionsPerAllocation: 64},
		},
		Rendezvous: defaultRendezvous(),
		Log:        Log{Level: "info", Format: "text"},
	}
}

// Parse reads a YAML configuration over the defaults and validates the
// result. Keys left out keep their Default() value. Errors are *Error and
// name the key and line.
func Parse(data []byte) (Config, error) {
	c := Default()
	lines, err := decode(data, &c)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, (&Sources{lines: lines}).Blame(err)
	}
	return c, nil
}

// Sources records where the keys of a configuration were set, so that an
// error Validate finds later names the file and line or the environment
// variable. Read returns it.
type Sources struct {
	File       string            // the configuration file, "" for none
	lines      map[string]int    // key -> line in File
	env        map[string]string // key -> environment variable
	UnknownEnv []string          // ICEBREAKER_* variables that set nothing, each with a hint
}

// Read builds a configuration from the defaults, the YAML file at path
// (none when path is ""), and the ICEBREAKER_* variables of environ
// ("NAME=value" strings, as os.Environ returns), each layer overriding the
// one before. It does not validate the result, so that the caller can still
// apply its own overrides (flags): call Validate then, and pass its error
// through Sources.Blame.
//
// An error reading the file or a variable is returned as is: an *Error for
// a bad key or value, naming the file and line or the variable, or the
// *fs.PathError of a missing file.
func Read(path string, environ []string) (Config, *Sources, error) {
	c := Default()
	src := &Sources{File: path, env: map[string]string{}}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, nil, err // *fs.PathError already names the file
		}
		if src.lines, err = decode(data, &c); err != nil {
			if e, ok := errors.AsType[*Error](err); ok {
				e.File = path
			}
			return Config{}, nil, err
		}
	}
	if err := src.applyEnv(&c, environ); err != nil {
		return Config{}, nil, err
	}
	normalize(reflect.ValueOf(&c).Elem())
	return c, src, nil
}

// Blame adds to a *Error from Validate the file and line, or the
// environment variable, that last set its key, and returns it. Other errors
// are returned unchanged.
func (s *Sources) Blame(err error) error {
	e, ok := errors.AsType[*Error](err)
	if !ok || s == nil || e.Key == "" {
		return err
	}
	for key, name := range s.env {
		if Covers(key, e.Key) {
			e.Env = name
			return err
		}
	}
	if line, ok := s.lines[e.Key]; ok && e.Line == 0 {
		e.File, e.Line = s.File, line
		return err
	}
	// The key itself was not in the file: blame the closest enclosing
	// key that was (a list, for one of its elements).
	for k := e.Key; k != ""; k = parentKey(k) {
		if line, ok := s.lines[k]; ok {
			e.File, e.Line = s.File, line
			break
		}
	}
	return err
}

// Covers reports whether setting key sets sub: sub is key itself or a
// key inside it ("turn.users" covers "turn.users[1].password").
func Covers(key, sub string) bool {
	return sub == key || strings.HasPrefix(sub, key+".") || strings.HasPrefix(sub, key+"[")
}

// parentKey returns the key that contains k: "turn.users[1]" for
// "turn.users[1].password", "turn.users" for "turn.users[1]", "" at the top.
func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

// Error is a configuration error. Callers may read Key to tell which
// setting is wrong.
type Error struct {
	File string // file name, "" when not read from a file
	Line int    // 1-based line of the key, 0 when unknown
	Env  string // the environment variable that set the key, if one did
	Key  string // dotted key such as "turn.realm", "" for the whole file
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString(e.Env + ": ")
	case e.File != "":
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func keyErr(key, format string, args ...any) *Error {
	return &Error{Key: key, Err: fmt.Errorf(format, args...)}
}

// SlogLevel returns the slog level for l.Level; call after Validate.
func (l Log) SlogLevel() slog.Level {
	lv, _ := parseLevel(l.Level)
	return lv
}

func parseLevel(s string) (slog.Level, bool) {
	switch s {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// ListenAddrs returns the parsed Listen addresses, with port 3478 where
// none is given; call after Validate.
func (c Config) ListenAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(c.Listen))
	for _, s := range c.Listen {
		ap, _ := ParseListen(s, DefaultPort)
		out = append(out, ap)
	}
	return out
}

// TLSAddrs returns the TLS listen addresses: TLS.Listen with port 5349
// where none is given, or, when it is empty, every IP of Listen at port
// 5349 (each IP once). It returns nil when TLS is not configured. Call
// after Validate.
func (c Config) TLSAddrs() []netip.AddrPort {
	if !c.TLS.Enabled() {
		return nil
	}
	var out []netip.AddrPort
	if len(c.TLS.Listen) > 0 {
		for _, s := range c.TLS.Listen {
			ap, _ := ParseListen(s, DefaultTLSPort)
			out = append(out, ap)
		}
		return out
	}
	for _, ap := range c.ListenAddrs() {
		tls := netip.AddrPortFrom(ap.Addr(), DefaultTLSPort)
		if !slices.Contains(out, tls) {
			out = append(out, tls)
		}
	}
	return out
}

// ParseListen parses a listen address, "IP:PORT" ("[IPv6]:PORT") or a bare
// "IP" that gets port def. IPv4-mapped addresses are unmapped.
func ParseListen(s string, def uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netx.Unmap(ap), nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return netip.AddrPortFrom(a.Unmap(), def), nil
	}
	return netip.AddrPort{}, fmt.Errorf("%q is not an IP address or IP:PORT", s)
}

// Enabled reports whether TLS is configured (a certificate and a key).
func (t TLS) Enabled() bool { return t.Cert != "" && t.Key != "" }

// Addr returns the parsed Listen address, or the zero AddrPort when the
// endpoint is off; call after Validate.
func (m Metrics) Addr() netip.AddrPort {
	ap, _ := ParseListen(m.Listen, 0)
	return ap
}

// AlternateAddr returns the parsed AlternateIP, or the zero Addr when RFC
// 5780 is off; call after Validate.
func (s STUN) AlternateAddr() netip.Addr {
	a, _ := netip.ParseAddr(s.AlternateIP)
	return a.Unmap()
}
