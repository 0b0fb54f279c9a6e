// Package config is the icebreaker daemon's configuration: its Go form, the
// built-in default (default.yaml, embedded, which documents every key), and
// a strict YAML reader.
//
// Strict means that an unknown key, a key given twice, a value of the wrong
// type and an out-of-range value are all errors, and every error names the
// dotted key (for example "stun.port") and, when read from a file, the line.
// A key left out of a file keeps its default value; so does a key given with
// an empty (null) value.
//
// Sections group keys by service: log and stun today, turn and others as
// they arrive.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

//go:embed default.yaml
var defaultYAML string

// DefaultYAML returns the text of the built-in default configuration: a
// commented YAML file that documents every key. Parsing it gives Default().
func DefaultYAML() string { return defaultYAML }

// Config is the whole daemon configuration. A Config is a plain value: copy
// it freely; it is safe for concurrent reads. Its zero value is not a valid
// configuration: start from Default, Parse or Load.
type Config struct {
	Log  Log  `yaml:"log"`
	STUN STUN `yaml:"stun"`
}

// Log configures the daemon's structured log, written to stderr.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// STUN configures the STUN Binding service (RFC 8489) and its RFC 5780
// extension.
type STUN struct {
	Listen         string        `yaml:"listen"` // IP to bind; "0.0.0.0" or "::" for all
	Port           int           `yaml:"port"`   // UDP and TCP; 0 = a free port
	UDP            bool          `yaml:"udp"`
	TCP            bool          `yaml:"tcp"`
	TLSPort        int           `yaml:"tls_port"`
	TLSCert        string        `yaml:"tls_cert"` // TLS is on when cert and key are set
	TLSKey         string        `yaml:"tls_key"`
	AlternateIP    string        `yaml:"alternate_ip"`   // RFC 5780 second IP; "" = off
	AlternatePort  int           `yaml:"alternate_port"` // 0 = Port+1
	Software       string        `yaml:"software"`       // "" = no SOFTWARE attribute
	UDPSockets     int           `yaml:"udp_sockets"`    // 0 = one per CPU core
	TCPIdleTimeout time.Duration `yaml:"tcp_idle_timeout"`
	MaxTCPConns    int           `yaml:"max_tcp_conns"`
}

// Default returns the built-in configuration, the same as parsing
// DefaultYAML(): STUN on UDP and TCP port 3478 of every IPv4 address, TLS
// on 5349 once a certificate is configured, info-level text logs.
func Default() Config {
	return Config{
		Log: Log{Level: "info", Format: "text"},
		STUN: STUN{
			Listen:         "0.0.0.0",
			Port:           3478,
			UDP:            true,
			TCP:            true,
			TLSPort:        5349,
			TCPIdleTimeout: 30 * time.Second,
			MaxTCPConns:    10000,
		},
	}
}

// Load reads the configuration file at path (see Parse). Its errors name
// the file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err // *fs.PathError already names the file
	}
	c, err := Parse(data)
	if err != nil {
		if e, ok := errors.AsType[*Error](err); ok {
			e.File = path
		}
		return Config{}, err
	}
	return c, nil
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
		if e, ok := errors.AsType[*Error](err); ok && e.Line == 0 {
			e.Line = lines[e.Key]
		}
		return Config{}, err
	}
	return c, nil
}

// Error is a configuration error. Callers may read Key to tell which
// setting is wrong.
type Error struct {
	File string // file name, "" when not read from a file
	Line int    // 1-based line of the key, 0 when unknown
	Key  string // dotted key such as "stun.port", "" for the whole file
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
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

// ListenAddr returns the parsed Listen address; call after Validate.
func (s STUN) ListenAddr() netip.Addr {
	a, _ := netip.ParseAddr(s.Listen)
	return a
}

// AlternateAddr returns the parsed AlternateIP, or the zero Addr when RFC
// 5780 is off; call after Validate.
func (s STUN) AlternateAddr() netip.Addr {
	a, _ := netip.ParseAddr(s.AlternateIP)
	return a
}

// TLS reports whether STUN over TLS is configured.
func (s STUN) TLS() bool { return s.TLSCert != "" && s.TLSKey != "" }
