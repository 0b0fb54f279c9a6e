package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultYAMLIsDefault(t *testing.T) {
	c, err := Parse([]byte(DefaultYAML()))
	if err != nil {
		t.Fatalf("default.yaml: %v", err)
	}
	if c != Default() {
		t.Errorf("default.yaml parses to\n%+v\nbut Default() is\n%+v", c, Default())
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// Every key of Config appears in default.yaml, which is its documentation.
func TestDefaultYAMLDocumentsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(DefaultYAML()), &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var collect func(n *yaml.Node, path string)
	collect = func(n *yaml.Node, path string) {
		if n.Kind == yaml.DocumentNode {
			collect(n.Content[0], path)
			return
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := path + n.Content[i].Value
			present[k] = true
			collect(n.Content[i+1], k+".")
		}
	}
	collect(&doc, "")
	var missing []string
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		for name, f := range yamlFields(typ) {
			key := path + name
			if !present[key] {
				missing = append(missing, key)
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				check(f.Type, key+".")
			}
		}
	}
	check(reflect.TypeFor[Config](), "")
	if len(missing) > 0 {
		t.Errorf("default.yaml does not document %v", missing)
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte(`
stun:
  listen: 192.0.2.1
  port: 3479
  tcp: false
  alternate_ip: 192.0.2.2
  software: "icebreaker test"
  tcp_idle_timeout: 1m30s
log:
  level: debug
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Level = "debug"
	want.STUN.Listen = "192.0.2.1"
	want.STUN.Port = 3479
	want.STUN.TCP = false
	want.STUN.AlternateIP = "192.0.2.2"
	want.STUN.Software = "icebreaker test"
	want.STUN.TCPIdleTimeout = 90 * time.Second
	if c != want {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseEmptyKeepsDefaults(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"comment":       "# nothing here\n",
		"null sections": "log:\nstun:\n",
		"null values":   "stun:\n  port:\n  tls_cert: ~\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if c != Default() {
				t.Errorf("got %+v, want Default()", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		key  string // Error.Key
		line int    // Error.Line, 0 = do not check
		want string // substring of the message
	}{
		{"unknown key", "stun:\n  prot: 3478\n", "stun.prot", 2, "stun.prot: unknown key (did you mean stun.port?)"},
		{"unknown key far from any", "stun:\n  wibble: 1\n", "stun.wibble", 2, "the keys in stun are listen, port, udp"},
		{"unknown section", "turnn:\n  x: 1\n", "turnn", 1, "unknown key"},
		{"duplicate key", "stun:\n  port: 1\n  port: 2\n", "stun.port", 3, "given twice (first on line 2)"},
		{"bad IP", "stun:\n  alternate_ip: foo\n", "stun.alternate_ip", 2, `stun.alternate_ip: "foo" is not an IP address`},
		{"bad listen", "stun:\n  listen: 1.2.3\n", "stun.listen", 2, `"1.2.3" is not an IP address`},
		{"bad duration", "stun:\n  tcp_idle_timeout: 30\n", "stun.tcp_idle_timeout", 2, `"30" is not a duration`},
		{"bad duration unit", "stun:\n  tcp_idle_timeout: 30 seconds\n", "stun.tcp_idle_timeout", 2, "is not a duration"},
		{"negative duration", "stun:\n  tcp_idle_timeout: -1s\n", "stun.tcp_idle_timeout", 2, "must be positive"},
		{"port too big", "stun:\n  port: 65536\n", "stun.port", 2, "65536 is not a port number (0-65535)"},
		{"port negative", "stun:\n  tls_port: -1\n", "stun.tls_port", 2, "is not a port number"},
		{"port as string", "stun:\n  port: \"3478\"\n", "stun.port", 2, `"3478" is not an integer`},
		{"port as list", "stun:\n  port: [1, 2]\n", "stun.port", 2, "expected an integer, got a list"},
		{"bool wrong", "stun:\n  udp: maybe\n", "stun.udp", 2, "is not a boolean"},
		{"section is scalar", "stun: 3478\n", "stun", 1, `expected a section of keys, got the value "3478"`},
		{"top level scalar", "hello\n", "", 1, "at the top level"},
		{"alternate without specific listen", "stun:\n  alternate_ip: 192.0.2.2\n", "stun.alternate_ip", 2, `requires stun.listen to be a specific IP address, not "0.0.0.0"`},
		{"alternate family", "stun:\n  listen: 192.0.2.1\n  alternate_ip: 2001:db8::2\n", "stun.alternate_ip", 3, "not of the same IP family"},
		{"alternate same as listen", "stun:\n  listen: 192.0.2.1\n  alternate_ip: 192.0.2.1\n", "stun.alternate_ip", 3, "same as stun.listen"},
		{"alternate without udp", "stun:\n  listen: 192.0.2.1\n  alternate_ip: 192.0.2.2\n  udp: false\n", "stun.alternate_ip", 3, "stun.udp is false"},
		{"alternate port alone", "stun:\n  alternate_port: 4000\n", "stun.alternate_port", 2, "stun.alternate_ip is not"},
		{"alternate port clash", "stun:\n  listen: 192.0.2.1\n  alternate_ip: 192.0.2.2\n  alternate_port: 3478\n", "stun.alternate_port", 4, "same as stun.port"},
		{"cert without key", "stun:\n  tls_cert: cert.pem\n", "stun.tls_key", 0, "stun.tls_key: must be set when stun.tls_cert is"},
		{"key without cert", "stun:\n  tls_key: key.pem\n", "stun.tls_cert", 0, "must be set when stun.tls_key is"},
		{"tls port clash", "stun:\n  tls_cert: c\n  tls_key: k\n  tls_port: 3478\n", "stun.tls_port", 4, "also stun.port"},
		{"no transport", "stun:\n  udp: false\n  tcp: false\n", "stun.udp", 2, "no transport enabled"},
		{"level", "log:\n  level: loud\n", "log.level", 2, `"loud" is not a level`},
		{"format", "log:\n  format: xml\n", "log.format", 2, "is not a format"},
		{"software too long", "stun:\n  software: " + strings.Repeat("x", 128) + "\n", "stun.software", 2, "fewer than 128"},
		{"udp sockets", "stun:\n  udp_sockets: -1\n", "stun.udp_sockets", 2, "out of range"},
		{"max conns", "stun:\n  max_tcp_conns: 0\n", "stun.max_tcp_conns", 2, "at least 1"},
		{"two documents", "stun:\n  port: 1\n---\nstun:\n  port: 2\n", "", 0, "more than one YAML document"},
		{"syntax", "stun:\n  port: 1\n port: 2\n", "", 0, "yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if e.Key != tt.key {
				t.Errorf("Key = %q, want %q (error: %v)", e.Key, tt.key, err)
			}
			if tt.line != 0 && e.Line != tt.line {
				t.Errorf("Line = %d, want %d (error: %v)", e.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("stun:\n  port: 4000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.STUN.Port != 4000 || c.STUN.TLSPort != 5349 {
		t.Errorf("Load = %+v", c.STUN)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: info\nstun:\n  prot: 4000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":4: stun.prot: unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load(bad) = %v, want prefix %q", err, want)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestValidateAfterChange(t *testing.T) {
	c := Default()
	c.STUN.Listen = "::"
	if err := c.Validate(); err != nil {
		t.Fatalf("listen :: : %v", err)
	}
	c.STUN.Listen = "2001:db8::1"
	c.STUN.AlternateIP = "2001:db8::2"
	c.STUN.AlternatePort = 3479
	if err := c.Validate(); err != nil {
		t.Fatalf("IPv6 RFC 5780: %v", err)
	}
	if got, want := c.STUN.AlternateAddr().String(), "2001:db8::2"; got != want {
		t.Errorf("AlternateAddr = %s, want %s", got, want)
	}
	c.STUN.Port = 65535
	c.STUN.AlternatePort = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "port+1") {
		t.Errorf("port 65535 with alternate_port 0: %v", err)
	}
	c = Default()
	c.STUN.Port = 0
	if err := c.Validate(); err != nil {
		t.Errorf("port 0: %v", err)
	}
	// Errors from Validate carry no line: they may come from flags.
	c.Log.Format = "yaml"
	if err := c.Validate(); err == nil || err.Error() != `log.format: "yaml" is not a format (text or json)` {
		t.Errorf("Validate = %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"prot", "port", 2}, {"port", "port", 0}, {"", "abc", 3}, {"listn", "listen", 1}} {
		if got := editDistance(tt.a, tt.b); got != tt.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
}
