package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultYAMLIsDefault(t *testing.T) {
	c, err := Parse([]byte(DefaultYAML()))
	if err != nil {
		t.Fatalf("default.yaml: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("default.yaml parses to\n%+v\nbut Default() is\n%+v", c, Default())
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// checkDocumented checks that text documents every key of Config: each
// section and key is present, and each key that holds a value has a
// comment naming the coturn option it replaces on its line.
func checkDocumented(t *testing.T, name, text string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]int{}
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
			present[k] = n.Content[i].Line
			collect(n.Content[i+1], k+".")
		}
	}
	collect(&doc, "")
	lines := strings.Split(text, "\n")
	for _, key := range EnvKeys() {
		line, ok := present[key]
		if !ok {
			t.Errorf("%s does not document %s", name, key)
			continue
		}
		if !strings.Contains(lines[line-1], "# coturn: ") {
			t.Errorf("%s:%d: %s has no \"# coturn:\" comment: %q", name, line, key, lines[line-1])
		}
	}
}

func TestDefaultYAMLDocumentsEveryKey(t *testing.T) {
	checkDocumented(t, "default.yaml", DefaultYAML())
	// EnvKeys must list every leaf of Config, or the check above and the
	// environment would miss some.
	var leaves []string
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, path+name+".")
			} else {
				leaves = append(leaves, path+name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	if !reflect.DeepEqual(leaves, EnvKeys()) {
		t.Errorf("EnvKeys() = %v\nwant %v", EnvKeys(), leaves)
	}
}

// The sample configuration in examples/ stays valid and complete.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "icebreaker.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := load(path); err != nil {
		t.Fatalf("load: %v", err)
	}
	checkDocumented(t, path, string(data))
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte(`
listen: ["192.0.2.1:3479", "[2001:db8::1]"]
tcp:
  enabled: false
  idle_timeout: 1m30s
stun:
  alternate_port: 0
  software: "icebreaker test"
turn:
  realm: example.org
  users:
    - username: alice
      password: "secret:with:colons"
  rest_secrets: [s1, s0]
  relay_ports: 50000-50100
  lifetime: {default: 5m, max: 2h}
  policy: {allow_peers: [10.1.0.0/16], deny_peers: ["203.0.113.7"]}
  quotas: {allocations_per_user: 3, bandwidth_per_user: 10Mbit/s}
log:
  level: debug
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Listen = []string{"192.0.2.1:3479", "[2001:db8::1]"}
	want.TCP.Enabled = false
	want.TCP.IdleTimeout = 90 * time.Second
	want.STUN.Software = "icebreaker test"
	want.TURN.Realm = "example.org"
	want.TURN.Users = []User{{"alice", "secret:with:colons"}}
	want.TURN.RESTSecrets = []string{"s1", "s0"}
	want.TURN.RelayPorts = "50000-50100"
	want.TURN.Lifetime = Lifetime{5 * time.Minute, 2 * time.Hour}
	want.TURN.Policy = Policy{AllowPeers: []string{"10.1.0.0/16"}, DenyPeers: []string{"203.0.113.7"}}
	want.TURN.Quotas.AllocationsPerUser = 3
	want.TURN.Quotas.BandwidthPerUser = "10Mbit/s"
	want.Log.Level = "debug"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if got := c.ListenAddrs(); !reflect.DeepEqual(got, []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:3479"), netip.MustParseAddrPort("[2001:db8::1]:3478")}) {
		t.Errorf("ListenAddrs = %v", got)
	}
	if lo, hi := c.TURN.PortRange(); lo != 50000 || hi != 50100 {
		t.Errorf("PortRange = %d-%d", lo, hi)
	}
	if perAlloc, perUser := c.TURN.Quotas.Bandwidth(); perAlloc != 0 || perUser != 1250000 {
		t.Errorf("Bandwidth = %d, %d", perAlloc, perUser)
	}
	if got := c.TURN.Policy.DenyPrefixes(); len(got) != 1 || got[0] != netip.MustParsePrefix("203.0.113.7/32") {
		t.Errorf("DenyPrefixes = %v", got)
	}
	if got := c.TURN.StaticUsers(); got["alice"] != "secret:with:colons" || len(got) != 1 {
		t.Errorf("StaticUsers = %v", got)
	}
}

func TestMetricsListen(t *testing.T) {
	if Default().Metrics.Listen != "" || Default().Metrics.Addr().IsValid() {
		t.Errorf("metrics are on by default: %+v", Default().Metrics)
	}
	tests := []struct {
		in   string
		want netip.AddrPort
	}{
		{"metrics:\n  listen: 127.0.0.1:9641\n", netip.MustParseAddrPort("127.0.0.1:9641")},
		{"metrics:\n  listen: \"[::1]:9100\"\n", netip.MustParseAddrPort("[::1]:9100")},
		{"metrics:\n  listen: \"[::ffff:127.0.0.1]:9641\"\n", netip.MustParseAddrPort("127.0.0.1:9641")},
		// Another port on a listener's address, and the TCP port of a
		// UDP-only listener, are free for HTTP.
		{"listen: [\"127.0.0.1:3478\"]\nmetrics:\n  listen: 127.0.0.1:3479\n", netip.MustParseAddrPort("127.0.0.1:3479")},
		{"tcp:\n  enabled: false\nmetrics:\n  listen: 0.0.0.0:3478\n", netip.MustParseAddrPort("0.0.0.0:3478")},
		{"metrics:\n  listen: \"\"\n", netip.AddrPort{}},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.in))
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := c.Metrics.Addr(); got != tt.want {
			t.Errorf("%q: Addr() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseEmptyKeepsDefaults(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"comment":       "# nothing here\n",
		"null sections": "log:\nstun:\nturn:\n",
		"null values":   "listen:\nturn:\n  realm:\n  users: ~\n",
		"empty lists":   "tls:\n  listen: []\nturn:\n  users: []\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("got %+v, want Default()", c)
			}
		})
	}
}

// errorCase is a configuration that must fail with Error.Key key, at
// line (0: do not check), with want in the message.
type errorCase struct {
	name string
	in   string
	key  string
	line int
	want string
}

var parseErrors = []errorCase{
	// Structure.
	{"unknown key", "turn:\n  relm: x\n", "turn.relm", 2, "turn.relm: unknown key (did you mean turn.realm?)"},
	{"unknown key far from any", "stun:\n  wibble: 1\n", "stun.wibble", 2, "the keys in stun are alternate_ip, alternate_port, software"},
	{"moved key", "stun:\n  port: 3478\n", "stun.port", 2, `it moved: use listen, a list of "IP:PORT"`},
	{"moved cert", "stun:\n  tls_cert: c.pem\n", "stun.tls_cert", 2, "use tls.cert"},
	{"unknown section", "turnn:\n  x: 1\n", "turnn", 1, "unknown key (did you mean turn?)"},
	{"unknown in list element", "turn:\n  users:\n    - username: a\n      pasword: b\n", "turn.users[0].pasword", 4, "did you mean turn.users[0].password?"},
	{"duplicate key", "log:\n  level: info\n  level: debug\n", "log.level", 3, "given twice (first on line 2)"},
	{"section is scalar", "turn: 3478\n", "turn", 1, `expected a section of keys, got the value "3478"`},
	{"top level scalar", "hello\n", "", 1, "at the top level"},
	{"two documents", "log:\n  level: info\n---\nlog:\n  level: warn\n", "", 0, "more than one YAML document"},
	{"syntax", "log:\n  level: 1\n level: 2\n", "", 0, "yaml:"},
	{"list as scalar", "listen: 0.0.0.0:3478\n", "listen", 1, `expected a list (such as [a, b] or one "- item" per line), got the value`},
	{"list of lists", "listen: [[a]]\n", "listen[0]", 1, "expected a string, got a list"},
	{"users as strings", "turn:\n  users: [alice]\n", "turn.users[0]", 2, "expected a section of keys"},
	{"bool wrong", "udp:\n  enabled: maybe\n", "udp.enabled", 2, "is not a boolean"},
	{"int as string", "tcp:\n  max_conns: \"10\"\n", "tcp.max_conns", 2, `"10" is not an integer`},
	{"bad duration", "tcp:\n  idle_timeout: 30\n", "tcp.idle_timeout", 2, `"30" is not a duration`},

	// Listeners.
	{"bad listen", "listen: [\"1.2.3\"]\n", "listen[0]", 1, `"1.2.3" is not an IP address or IP:PORT`},
	{"listen port too big", "listen:\n  - 127.0.0.1:3478\n  - 127.0.0.1:65536\n", "listen[1]", 3, "is not an IP address or IP:PORT"},
	{"listen twice", "listen: [127.0.0.1, \"127.0.0.1:3478\"]\n", "listen[1]", 1, "127.0.0.1:3478 is listed twice"},
	{"listen overlap", "listen: [\"0.0.0.0:3478\", \"127.0.0.1:3478\"]\n", "listen[1]", 1, "overlaps listen[0] 0.0.0.0:3478"},
	{"listen dual-stack overlap", "listen: [\"[::]:3478\", \"0.0.0.0:3478\"]\n", "listen[1]", 1, "overlaps"},
	{"listen multicast", "listen: [224.0.0.1]\n", "listen[0]", 1, "multicast"},
	{"no listen", "listen: []\n", "listen", 1, "no listen address"},
	{"no transport", "udp:\n  enabled: false\ntcp:\n  enabled: false\n", "udp.enabled", 2, "no transport enabled"},
	{"negative duration", "tcp:\n  idle_timeout: -1s\n", "tcp.idle_timeout", 2, "must be positive"},
	{"udp sockets", "udp:\n  sockets: -1\n", "udp.sockets", 2, "out of range"},
	{"max conns", "tcp:\n  max_conns: 0\n", "tcp.max_conns", 2, "at least 1"},
	{"conns per ip", "tcp:\n  conns_per_ip: -1\n", "tcp.conns_per_ip", 2, "negative"},
	{"tls handshakes per ip", "tcp:\n  tls_handshakes_per_ip: -1\n", "tcp.tls_handshakes_per_ip", 2, "negative"},
	{"message timeout", "tcp:\n  message_timeout: 0s\n", "tcp.message_timeout", 2, "must be positive"},
	{"cert without key", "tls:\n  cert: cert.pem\n", "tls.key", 0, "tls.key: must be set when tls.cert is"},
	{"key without cert", "tls:\n  key: key.pem\n", "tls.cert", 0, "must be set when tls.key is"},
	{"bad tls listen", "tls:\n  listen: [\"x\"]\n", "tls.listen[0]", 2, `"x" is not an IP address`},
	{"tls port clash", "tls:\n  cert: c\n  key: k\n  listen: [\"0.0.0.0:3478\"]\n", "tls.listen[0]", 4, "also listen[0], where TCP listens"},
	{"derived tls port clash", "listen: [\"0.0.0.0:5349\"]\ntls:\n  cert: c\n  key: k\n", "tls.listen", 0, "set tls.listen"},

	// STUN.
	{"bad alternate IP", "stun:\n  alternate_ip: foo\n", "stun.alternate_ip", 2, `stun.alternate_ip: "foo" is not an IP address`},
	{"alternate without specific listen", "stun:\n  alternate_ip: 192.0.2.2\n", "stun.alternate_ip", 2, `requires listen to be a specific IP address, not "0.0.0.0:3478"`},
	{"alternate with two listeners", "listen: [192.0.2.1, 192.0.2.3]\nstun:\n  alternate_ip: 192.0.2.2\n", "stun.alternate_ip", 3, "exactly one listen address"},
	{"alternate family", "listen: [192.0.2.1]\nstun:\n  alternate_ip: 2001:db8::2\n", "stun.alternate_ip", 3, "not of the same IP family"},
	{"alternate same as listen", "listen: [192.0.2.1]\nstun:\n  alternate_ip: 192.0.2.1\n", "stun.alternate_ip", 3, "the listen address itself"},
	{"alternate without udp", "listen: [192.0.2.1]\nudp:\n  enabled: false\nstun:\n  alternate_ip: 192.0.2.2\n", "stun.alternate_ip", 5, "udp.enabled is false"},
	{"alternate port alone", "stun:\n  alternate_port: 4000\n", "stun.alternate_port", 2, "stun.alternate_ip is not"},
	{"alternate port clash", "listen: [192.0.2.1]\nstun:\n  alternate_ip: 192.0.2.2\n  alternate_port: 3478\n", "stun.alternate_port", 4, "the listen port itself"},
	{"alternate port range", "stun:\n  alternate_port: 70000\n", "stun.alternate_port", 2, "not a port number"},
	{"software too long", "stun:\n  software: " + strings.Repeat("x", 128) + "\n", "stun.software", 2, "fewer than 128"},

	// TURN.
	{"empty realm", "turn:\n  realm: \"\"\n", "turn.realm", 2, "is empty"},
	{"realm too long", "turn:\n  realm: " + strings.Repeat("r", 128) + "\n", "turn.realm", 2, "too long"},
	{"realm control", "turn:\n  realm: \"a\\u0007b\"\n", "turn.realm", 2, "OpaqueString"},
	{"empty username", "turn:\n  users: [{username: \"\", password: x}]\n", "turn.users[0].username", 2, "is empty"},
	{"empty password", "turn:\n  users:\n    - username: a\n      password: x\n    - username: b\n", "turn.users[1].password", 5, "is empty"},
	{"duplicate user", "turn:\n  users: [{username: a, password: x}, {username: a, password: y}]\n", "turn.users[1].username", 2, `"a" is also turn.users[0]`},
	{"username control", "turn:\n  users: [{username: \"a\\tb\", password: x}]\n", "turn.users[0].username", 2, "control characters"},
	{"password control", "turn:\n  users: [{username: a, password: \"x\\u0000\"}]\n", "turn.users[0].password", 2, "OpaqueString"},
	{"empty REST secret", "turn:\n  rest_secrets: [a, \"\"]\n", "turn.rest_secrets[1]", 2, "is empty"},
	{"short nonce secret", "turn:\n  nonce_secret: short\n", "turn.nonce_secret", 2, "is 5 bytes; use at least 16"},
	{"nonce ttl", "turn:\n  nonce_ttl: 10ms\n", "turn.nonce_ttl", 2, "shorter than one second"},
	{"nonce ttl too long", "turn:\n  nonce_ttl: 19h\n", "turn.nonce_ttl", 2, "longer than"},
	{"bad relay IP", "turn:\n  relay_ip: [relay.example]\n", "turn.relay_ip[0]", 2, "is not an IP address"},
	{"two relay IPv4", "turn:\n  relay_ip: [192.0.2.1, 192.0.2.2]\n", "turn.relay_ip[1]", 2, "second address of its family"},
	{"multicast relay", "turn:\n  relay_ip: [ff02::1]\n", "turn.relay_ip[0]", 2, "multicast"},
	{"unspecified relay", "turn:\n  relay_ip: [0.0.0.0]\n", "turn.relay_ip", 0, "set turn.external_ip"},
	{"bad external", "turn:\n  external_ip: [\"203.0.113.5/x\"]\n", "turn.external_ip[0]", 2, `the private part "x" is not an IP address`},
	{"external families", "turn:\n  external_ip: [\"203.0.113.5/fd00::1\"]\n", "turn.external_ip[0]", 2, "different families"},
	{"external mismatch", "turn:\n  relay_ip: [10.0.0.5]\n  external_ip: [\"203.0.113.5/10.0.0.6\"]\n", "turn.external_ip[0]", 3, "but turn.relay_ip is 10.0.0.5"},
	{"two externals", "turn:\n  external_ip: [203.0.113.5, 203.0.113.6]\n", "turn.external_ip[1]", 2, "second external address"},
	{"unspecified external", "turn:\n  external_ip: [0.0.0.0]\n", "turn.external_ip[0]", 2, "not a unicast address"},
	{"relay ports syntax", "turn:\n  relay_ports: 49152\n", "turn.relay_ports", 2, "not a port range MIN-MAX"},
	{"relay ports order", "turn:\n  relay_ports: 60000-50000\n", "turn.relay_ports", 2, "MIN <= MAX"},
	{"relay ports zero", "turn:\n  relay_ports: 0-100\n", "turn.relay_ports", 2, "range of ports 1-65535"},
	{"relay ports big", "turn:\n  relay_ports: 1-70000\n", "turn.relay_ports", 2, "not a port range"},
	{"lifetime zero", "turn:\n  lifetime: {default: 0s}\n", "turn.lifetime.default", 2, "not a positive whole number of seconds"},
	{"lifetime fraction", "turn:\n  lifetime: {max: 1.5s}\n", "turn.lifetime.max", 2, "whole number of seconds"},
	{"lifetime order", "turn:\n  lifetime:\n    default: 2h\n", "turn.lifetime.max", 0, "shorter than turn.lifetime.default 2h0m0s"},
	{"bad allow", "turn:\n  policy:\n    allow_peers: [10.0.0.0/33]\n", "turn.policy.allow_peers[0]", 3, "is not a CIDR prefix"},
	{"host bits", "turn:\n  policy:\n    deny_peers: [10.0.0.1/8]\n", "turn.policy.deny_peers[0]", 3, "host bits set: write 10.0.0.0/8"},
	{"negative user quota", "turn:\n  quotas: {allocations_per_user: -1}\n", "turn.quotas.allocations_per_user", 2, "negative"},
	{"negative total quota", "turn:\n  quotas: {total_allocations: -1}\n", "turn.quotas.total_allocations", 2, "negative"},
	{"negative permissions quota", "turn:\n  quotas: {permissions_per_allocation: -1}\n", "turn.quotas.permissions_per_allocation", 2, "negative"},
	{"negative error rate", "turn:\n  quotas: {error_rate_per_ip: -5}\n", "turn.quotas.error_rate_per_ip", 2, "negative"},
	{"negative connects quota", "turn:\n  quotas: {connects_per_user: -1}\n", "turn.quotas.connects_per_user", 2, "negative"},
	{"negative descriptors", "turn:\n  quotas: {descriptors: -1}\n", "turn.quotas.descriptors", 2, "negative"},
	{"bandwidth unit", "turn:\n  quotas: {bandwidth_per_allocation: 1000}\n", "turn.quotas.bandwidth_per_allocation", 2, "has no unit"},
	{"bandwidth syntax", "turn:\n  quotas: {bandwidth_per_user: 1 furlong}\n", "turn.quotas.bandwidth_per_user", 2, "is not a bandwidth"},
	{"bandwidth tiny", "turn:\n  quotas: {bandwidth_per_user: 8bit/s}\n", "turn.quotas.bandwidth_per_user", 2, "one full-size packet"},

	// Metrics.
	{"metrics not an address", "metrics:\n  listen: localhost:9641\n", "metrics.listen", 2, `"localhost:9641" is not IP:PORT (for example 127.0.0.1:9641)`},
	{"metrics without port", "metrics:\n  listen: 127.0.0.1\n", "metrics.listen", 2, `"127.0.0.1" has no port: write IP:PORT, for example 127.0.0.1:9641`},
	{"metrics IPv6 without port", "metrics:\n  listen: \"::1\"\n", "metrics.listen", 2, "has no port: write IP:PORT, for example [::1]:9641"},
	{"metrics port 0", "metrics:\n  listen: 127.0.0.1:0\n", "metrics.listen", 2, "port 0 would be a different free port at every start, where Prometheus cannot find it"},
	{"metrics port too big", "metrics:\n  listen: 127.0.0.1:65536\n", "metrics.listen", 2, "is not IP:PORT"},
	{"metrics multicast", "metrics:\n  listen: 239.0.0.1:9641\n", "metrics.listen", 2, "multicast"},
	{"metrics on a TCP listener", "listen: [\"0.0.0.0:3478\"]\nmetrics:\n  listen: 127.0.0.1:3478\n", "metrics.listen", 3, "127.0.0.1:3478 takes the TCP port of listen[0] 0.0.0.0:3478"},
	{"metrics on the TLS port", "tls:\n  cert: c\n  key: k\nmetrics:\n  listen: 0.0.0.0:5349\n", "metrics.listen", 5, "takes the TLS port 0.0.0.0:5349"},
	{"metrics on a TLS listener", "tls:\n  cert: c\n  key: k\n  listen: [\"[::]:443\"]\nmetrics:\n  listen: 127.0.0.1:443\n", "metrics.listen", 6, "takes the TCP port of tls.listen[0] [::]:443"},
	{"metrics type", "metrics:\n  listen: [127.0.0.1:9641]\n", "metrics.listen", 2, "expected a string"},
	{"rendezvous not an address", "rendezvous:\n  listen: localhost\n", "rendezvous.listen", 2, `"localhost" is not an IP address or IP:PORT, or "off"`},
	{"transit multicast", "rendezvous:\n  transit_listen: 239.0.0.1:4001\n", "rendezvous.transit_listen", 2, "multicast"},
	{"rendezvous limit zero", "rendezvous:\n  limits:\n    conns_per_ip: 0\n", "rendezvous.limits.conns_per_ip", 3, "0 must be at least 1"},
	{"rendezvous message size", "rendezvous:\n  limits:\n    message_size: 999999999\n", "rendezvous.limits.message_size", 3, "above 16 MiB"},
	{"rendezvous prune", "rendezvous:\n  limits:\n    prune_after: 1ms\n", "rendezvous.limits.prune_after", 3, "shorter than one second"},
	{"rendezvous public host", "rendezvous:\n  public_host: \"a/b\"\n", "rendezvous.public_host", 2, "is not a host name"},
	// The test page: a token of 16 or more characters, the rendezvous, TURN REST. The
	// key left out of the file is blamed on its section's line.
	{"test page without token", "rendezvous:\n  test_page:\n    enabled: true\n", "rendezvous.test_page.token", 2, "must be set when rendezvous.test_page.enabled"},
	{"test page short token", "rendezvous:\n  test_page:\n    enabled: true\n    token: short\n", "rendezvous.test_page.token", 4, "is 5 characters long; use at least 16"},
	{"test page token space", "rendezvous:\n  test_page:\n    enabled: true\n    token: \"0123456789 abcdef\"\n", "rendezvous.test_page.token", 4, "white space"},
	{"test page rendezvous off", "rendezvous:\n  listen: \"off\"\n  test_page:\n    enabled: true\n    token: 0123456789abcdef\n", "rendezvous.test_page.enabled", 4, "which is \"off\""},
	{"test page no rest secret", "rendezvous:\n  test_page:\n    enabled: true\n    token: 0123456789abcdef\n", "rendezvous.test_page.enabled", 3, "needs turn.enabled and turn.rest_secrets"},
	{"metrics unknown key", "metrics:\n  port: 9641\n", "metrics.port", 2, "the keys in metrics are listen"},

	// Log.
	{"level", "log:\n  level: loud\n", "log.level", 2, `"loud" is not a level`},
	{"format", "log:\n  format: xml\n", "log.format", 2, "is not a format"},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrors {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			checkError(t, err, tt)
		})
	}
}

func checkError(t *testing.T, err error, tt errorCase) *Error {
	t.Helper()
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
	return e
}

// TestLoad reads files the way serve does: Read, Validate, Blame.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("listen: [\"127.0.0.1:4000\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddrs()[0].Port() != 4000 || !c.TURN.Enabled {
		t.Errorf("load = %+v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: info\nturn:\n  relm: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = load(bad)
	if want := bad + ":4: turn.relm: unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("load(bad) = %v, want prefix %q", err, want)
	}

	// A validation error names the file and the line of the key.
	invalid := filepath.Join(dir, "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("turn:\n  users:\n    - {username: a, password: \"\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = load(invalid)
	if want := invalid + ":3: turn.users[0].password: is empty"; err == nil || err.Error() != want {
		t.Errorf("load(invalid) = %v, want %q", err, want)
	}

	if _, err := load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("load(missing) = %v, want ErrNotExist", err)
	}
}

func TestValidateAfterChange(t *testing.T) {
	c := Default()
	c.Listen = []string{"::"}
	if err := c.Validate(); err != nil {
		t.Fatalf("listen :: : %v", err)
	}
	if got := c.ListenAddrs(); got[0] != netip.MustParseAddrPort("[::]:3478") {
		t.Errorf("ListenAddrs = %v", got)
	}
	c.Listen = []string{"[2001:db8::1]:3478"}
	c.STUN.AlternateIP = "2001:db8::2"
	c.STUN.AlternatePort = 3479
	if err := c.Validate(); err != nil {
		t.Fatalf("IPv6 RFC 5780: %v", err)
	}
	if got, want := c.STUN.AlternateAddr().String(), "2001:db8::2"; got != want {
		t.Errorf("AlternateAddr = %s, want %s", got, want)
	}
	c.Listen = []string{"[2001:db8::1]:65535"}
	c.STUN.AlternatePort = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "port+1") {
		t.Errorf("port 65535 with alternate_port 0: %v", err)
	}
	c = Default()
	c.Listen = []string{"0.0.0.0:0"}
	if err := c.Validate(); err != nil {
		t.Errorf("port 0: %v", err)
	}
	// Errors from Validate carry no line: they may come from flags.
	c.Log.Format = "yaml"
	if err := c.Validate(); err == nil || err.Error() != `log.format: "yaml" is not a format (text or json)` {
		t.Errorf("Validate = %v", err)
	}
}

func TestTLSAddrs(t *testing.T) {
	c := Default()
	if got := c.TLSAddrs(); got != nil {
		t.Errorf("TLSAddrs without certificate = %v", got)
	}
	c.TLS.Cert, c.TLS.Key = "c", "k"
	c.Listen = []string{"127.0.0.1:3478", "127.0.0.1:3479", "[::1]:0"}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5349"), netip.MustParseAddrPort("[::1]:5349")}
	if got := c.TLSAddrs(); !reflect.DeepEqual(got, want) {
		t.Errorf("derived TLSAddrs = %v, want %v", got, want)
	}
	c.TLS.Listen = []string{"192.0.2.1", "192.0.2.1:443"}
	want = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:5349"), netip.MustParseAddrPort("192.0.2.1:443")}
	if got := c.TLSAddrs(); !reflect.DeepEqual(got, want) {
		t.Errorf("TLSAddrs = %v, want %v", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestRelayAndExternalAddrs(t *testing.T) {
	tests := []struct {
		relay, external []string
		r4, r6, e4, e6  string // "" = zero Addr
	}{
		{nil, nil, "", "", "", ""},
		{[]string{"10.0.0.5", "2001:db8::5"}, nil, "10.0.0.5", "2001:db8::5", "", ""},
		{[]string{"::ffff:10.0.0.5"}, []string{"203.0.113.5"}, "10.0.0.5", "", "203.0.113.5", ""},
		{nil, []string{"203.0.113.5/10.0.0.5", "2001:db8::99"}, "10.0.0.5", "", "203.0.113.5", "2001:db8::99"},
		{[]string{"0.0.0.0"}, []string{"203.0.113.5"}, "0.0.0.0", "", "203.0.113.5", ""},
	}
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	for _, tt := range tests {
		c := Default()
		c.TURN.RelayIP, c.TURN.ExternalIP = tt.relay, tt.external
		if err := c.Validate(); err != nil {
			t.Errorf("%v %v: %v", tt.relay, tt.external, err)
			continue
		}
		r4, r6 := c.TURN.RelayAddrs()
		e4, e6 := c.TURN.ExternalAddrs()
		if r4 != addr(tt.r4) || r6 != addr(tt.r6) || e4 != addr(tt.e4) || e6 != addr(tt.e6) {
			t.Errorf("%v %v: relay %v %v external %v %v", tt.relay, tt.external, r4, r6, e4, e6)
		}
	}
}

func TestParseBandwidth(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // -1: error
	}{
		{"", 0},
		{"1MB/s", 1000000},
		{"1 MB/s", 1000000},
		{"1.5kB/s", 1500},
		{"2KiB/s", 2048},
		{"1MiB/s", 1 << 20},
		{"1GB/s", 1e9},
		{"10Mbit/s", 1250000},
		{"10Mbps", 1250000},
		{"1Gbps", 125000000},
		{"12000bit/s", 1500},
		{"1000", -1},
		{"1 mb/s", -1},
		{"MB/s", -1},
		{"1..2MB/s", -1},
		{"100B/s", -1},
		{"-1MB/s", -1},
		{"1e30GB/s", -1},
	}
	for _, tt := range tests {
		got, err := ParseBandwidth(tt.in)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("ParseBandwidth(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
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

func TestClone(t *testing.T) {
	c := Default()
	c.TURN.Users = []User{{"a", "b"}}
	d := clone(c)
	d.Listen[0] = "changed"
	d.TURN.Users[0].Password = "changed"
	if c.Listen[0] == "changed" || c.TURN.Users[0].Password == "changed" {
		t.Error("clone shares lists")
	}
}
