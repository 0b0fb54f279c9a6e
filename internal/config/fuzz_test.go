package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML to Parse: it must not panic, an error
// must be a *Error (which names the key or line, so the operator can find
// it), and a configuration it accepts must pass Validate again unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(DefaultYAML()))
	for _, s := range []string{
		"",
		"listen: [\"127.0.0.1:3478\"]\n",
		"listen: 7\n",
		"stun:\n  alternate_ip: 127.0.0.2\n",
		"turn:\n  enabled: true\n  realm: example.org\n  users:\n    - name: alice\n      password: secret\n",
		"turn:\n  quotas:\n    bandwidth_per_allocation: 10Mbit/s\n",
		"turn:\n  relay_ports: 50000-40000\n",
		"log:\n  level: loud\n",
		"admin: {listen: /run/ib/admin.sock}\ndrain: {timeout: 5m, alternate_server: \"192.0.2.1:3478\"}\n",
		"admin: {listen: \"[::1]:9642\"}\ndrain: {timeout: -1s}\n",
		"unknown_key: 1\n",
		"turn: [1, 2]\n",
		"&a [*a]\n",
		"listen: !!binary aGVsbG8=\n",
		"? [a, b]\n: c\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		c, err := Parse(data)
		if err != nil {
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Fatalf("Parse error %T %q is not a *Error", err, err)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("Parse returned an empty error message")
			}
			return
		}
		before := clone(c)
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that Validate then refuses: %v", err)
		}
		if !reflect.DeepEqual(c, before) {
			t.Fatal("Validate changed the configuration")
		}
	})
}

// FuzzReadEnv feeds arbitrary ICEBREAKER_* variables to Read: no panic,
// and an error is a *Error that names the variable.
func FuzzReadEnv(f *testing.F) {
	f.Add("ICEBREAKER_LOG_LEVEL", "debug")
	f.Add("ICEBREAKER_LISTEN", "127.0.0.1:3478,[::1]:3478")
	f.Add("ICEBREAKER_TURN_ENABLED", "maybe")
	f.Add("ICEBREAKER_TURN_QUOTAS_MAX_ALLOCATIONS", "-1")
	f.Add("ICEBREAKER_NOPE", "1")
	f.Fuzz(func(t *testing.T, name, value string) {
		if !strings.HasPrefix(name, EnvPrefix) {
			name = EnvPrefix + name
		}
		c, src, err := Read("", []string{name + "=" + value})
		if err != nil {
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Read error %T %q is not a *Error", err, err)
			}
			if e.Env != name {
				t.Fatalf("error %q names variable %q, want %q", err, e.Env, name)
			}
			return
		}
		if err := c.Validate(); err != nil {
			// A value of the right type may still be out of range, or
			// clash with another key: still a *Error, and when its key
			// is the variable's, Blame names the variable.
			e, ok := errors.AsType[*Error](src.Blame(err))
			if !ok {
				t.Fatalf("Validate error %T %q is not a *Error", err, err)
			}
			if env, set := src.env[e.Key]; set && e.Env != env {
				t.Fatalf("error %q is not blamed on %s, which set %s", err, env, e.Key)
			}
		}
	})
}

// FuzzParseBandwidth: no panic, and an accepted value is within the
// bounds the token bucket needs.
func FuzzParseBandwidth(f *testing.F) {
	for _, s := range []string{"", "1MB/s", "10Mbit/s", "2.5 Gbps", "512KiB/s", "12", "1e400MB/s", "0.0001Gbps", "NaNMB/s", ".MB/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseBandwidth(s)
		switch {
		case err != nil:
			if v != 0 {
				t.Fatalf("ParseBandwidth(%q) = %d with error %v", s, v, err)
			}
		case s == "":
			if v != 0 {
				t.Fatalf("ParseBandwidth(\"\") = %d, want 0 (unlimited)", v)
			}
		case v < MinBandwidth || v > 1<<62:
			t.Fatalf("ParseBandwidth(%q) = %d, outside [%d, 2^62]", s, v, MinBandwidth)
		}
	})
}

// FuzzParseListen: no panic; an accepted address is valid, unmapped, and
// parses back to itself.
func FuzzParseListen(f *testing.F) {
	for _, s := range []string{"127.0.0.1:3478", "::1", "[::1]:5349", "[::ffff:127.0.0.1]:1", "0.0.0.0", "host:3478", "[fe80::1%eth0]:3478", ""} {
		f.Add(s, uint16(3478))
	}
	f.Fuzz(func(t *testing.T, s string, def uint16) {
		ap, err := ParseListen(s, def)
		if err != nil {
			return
		}
		if !ap.IsValid() || ap.Addr().Is4In6() {
			t.Fatalf("ParseListen(%q) = %v: invalid or IPv4-mapped", s, ap)
		}
		again, err := ParseListen(ap.String(), def)
		if err != nil || again != ap {
			t.Fatalf("ParseListen(%q) = %v, which parses back as %v, %v", s, ap, again, err)
		}
	})
}
