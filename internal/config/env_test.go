package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"listen":                           "ICEBREAKER_LISTEN",
		"turn.realm":                       "ICEBREAKER_TURN_REALM",
		"turn.rest_secrets":                "ICEBREAKER_TURN_REST_SECRETS",
		"turn.quotas.allocations_per_user": "ICEBREAKER_TURN_QUOTAS_ALLOCATIONS_PER_USER",
		"log.level":                        "ICEBREAKER_LOG_LEVEL",
		"metrics.listen":                   "ICEBREAKER_METRICS_LISTEN",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
	seen := map[string]string{}
	for _, key := range EnvKeys() {
		name := EnvName(key)
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share the variable %s", key, other, name)
		}
		seen[name] = key
	}
}

// Every key can be set from the environment, to a value that parses.
func TestEnvSetsEveryKey(t *testing.T) {
	values := map[string]string{
		"listen": "127.0.0.1:1000, [::1]:1000", "udp.enabled": "false", "udp.sockets": "2",
		"tcp.enabled": "true", "tcp.idle_timeout": "1m", "tcp.max_conns": "5",
		"tcp.conns_per_ip": "7", "tcp.tls_handshakes_per_ip": "3", "tcp.message_timeout": "4s",
		"tls.listen": "127.0.0.1:1001", "tls.cert": "c.pem", "tls.key": "k.pem",
		"stun.alternate_ip": "", "stun.alternate_port": "0", "stun.software": "sw",
		"turn.enabled": "false", "turn.realm": "example.org", "turn.users": "alice:pw:with:colons,bob:x",
		"turn.user_db": "none", "turn.rest_secrets": "new,old", "turn.nonce_secret": "0123456789abcdef",
		"turn.nonce_ttl": "5m", "turn.relay_ip": "127.0.0.1", "turn.external_ip": "203.0.113.5/127.0.0.1",
		"turn.relay_ports": "50000-50010", "turn.lifetime.default": "10m", "turn.lifetime.max": "1h",
		"turn.loose_channels": "true", "turn.policy.allow_peers": "127.0.0.0/8", "turn.policy.deny_peers": "",
		"turn.quotas.allocations_per_user": "3", "turn.quotas.total_allocations": "100",
		"turn.quotas.bandwidth_per_allocation": "1MB/s", "turn.quotas.bandwidth_per_user": "2MB/s",
		"turn.quotas.permissions_per_allocation": "64", "turn.quotas.error_rate_per_ip": "20",
		"turn.quotas.connects_per_allocation": "2", "turn.quotas.connects_per_user": "5",
		"turn.quotas.tcp_connections_per_allocation": "7", "turn.quotas.descriptors": "900",
		"turn.quotas.overflow_alternates": "192.0.2.2:3478", "metrics.listen": "127.0.0.1:9641",
		"log.level": "debug", "log.format": "json",
		"rendezvous.listen": "127.0.0.1:4100", "rendezvous.tls_listen": "off", "rendezvous.transit_listen": "127.0.0.1",
		"rendezvous.db": "none", "rendezvous.motd": "hi", "rendezvous.disabled": "moved", "rendezvous.public_host": "rdv.example.org",
		"rendezvous.client_ip_header": "X-Forwarded-For", "rendezvous.ice_servers.enabled": "false",
		"rendezvous.ice_servers.token": "tok", "rendezvous.ice_servers.ttl": "10m",
		"rendezvous.test_page.enabled": "false", "rendezvous.test_page.token": "0123456789abcdef",
		"rendezvous.limits.message_size": "1000", "rendezvous.limits.messages_per_mailbox": "10",
		"rendezvous.limits.mailbox_bytes": "2000", "rendezvous.limits.mailboxes": "3", "rendezvous.limits.mailboxes_per_ip": "4",
		"rendezvous.limits.conns_per_ip": "5", "rendezvous.limits.rate": "6", "rendezvous.limits.burst": "7",
		"rendezvous.limits.prune_after": "1m", "rendezvous.transit.max_wait": "1m", "rendezvous.transit.bytes_per_pair": "8",
		"rendezvous.transit.max_duration": "1h", "rendezvous.transit.conns_per_ip": "9",
		"admin.listen": "127.0.0.1:9642", "drain.timeout": "2m", "drain.alternate_server": "192.0.2.1:3478",
	}
	var environ []string
	for _, key := range EnvKeys() {
		v, ok := values[key]
		if !ok {
			t.Errorf("no test value for %s", key)
		}
		environ = append(environ, EnvName(key)+"="+v)
	}
	c, src, err := Read("", environ)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(src.Blame(err))
	}
	if len(src.UnknownEnv) != 0 {
		t.Errorf("UnknownEnv = %v", src.UnknownEnv)
	}
	want := Config{
		Listen: []string{"127.0.0.1:1000", "[::1]:1000"},
		UDP:    UDP{false, 2},
		TCP:    TCP{true, time.Minute, 5, 7, 3, 4 * time.Second},
		TLS:    TLS{[]string{"127.0.0.1:1001"}, "c.pem", "k.pem"},
		STUN:   STUN{Software: "sw"},
		TURN: TURN{
			Realm:         "example.org",
			Users:         []User{{"alice", "pw:with:colons"}, {"bob", "x"}},
			UserDB:        "none",
			RESTSecrets:   []string{"new", "old"},
			NonceSecret:   "0123456789abcdef",
			NonceTTL:      5 * time.Minute,
			RelayIP:       []string{"127.0.0.1"},
			ExternalIP:    []string{"203.0.113.5/127.0.0.1"},
			RelayPorts:    "50000-50010",
			Lifetime:      Lifetime{10 * time.Minute, time.Hour},
			LooseChannels: true,
			Policy:        Policy{AllowPeers: []string{"127.0.0.0/8"}},
			Quotas:        Quotas{3, 100, "1MB/s", "2MB/s", 64, 20, 2, 5, 7, 900, []string{"192.0.2.2:3478"}},
		},
		Rendezvous: Rendezvous{Listen: "127.0.0.1:4100", TLSListen: "off", TransitListen: "127.0.0.1", DB: "none",
			MOTD: "hi", Disabled: "moved", PublicHost: "rdv.example.org", ClientIPHeader: "X-Forwarded-For",
			ICEServers: ICEServers{false, "tok", 10 * time.Minute}, TestPage: TestPage{false, "0123456789abcdef"},
			Limits:  RendezvousLimits{1000, 10, 2000, 3, 4, 5, 6, 7, time.Minute},
			Transit: TransitLimits{time.Minute, 8, time.Hour, 9}},
		Metrics: Metrics{Listen: "127.0.0.1:9641"},
		Log:     Log{"debug", "json"},
		Admin:   Admin{Listen: "127.0.0.1:9642"},
		Drain:   Drain{2 * time.Minute, "192.0.2.1:3478"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

// The file overrides the defaults, the environment overrides the file.
func TestReadPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("turn:\n  realm: from-file\n  rest_secrets: [f]\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, src, err := Read(file, []string{
		"ICEBREAKER_TURN_REALM=from-env",
		"PATH=/bin",
		"ICEBREAKER_DATA_DIR=/tmp/x", // read by the user store, not a key
		"ICEBREAKER_TURN_RELM=typo",
		"ICEBREAKER_NOTHING_LIKE_IT=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.TURN.Realm != "from-env" || c.Log.Level != "warn" || !reflect.DeepEqual(c.TURN.RESTSecrets, []string{"f"}) ||
		c.Log.Format != "text" {
		t.Errorf("got %+v", c)
	}
	want := []string{
		"ICEBREAKER_TURN_RELM is not a configuration variable and is ignored (did you mean ICEBREAKER_TURN_REALM?)",
		"ICEBREAKER_NOTHING_LIKE_IT is not a configuration variable and is ignored",
	}
	if !reflect.DeepEqual(src.UnknownEnv, want) {
		t.Errorf("UnknownEnv = %q\nwant %q", src.UnknownEnv, want)
	}
}

func TestEnvErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("turn:\n  nonce_secret: short\n  users: [{username: a, password: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		file    string
		want    string // the whole error message
		readErr bool   // from Read rather than Validate
	}{
		{"bad int", "ICEBREAKER_TCP_MAX_CONNS=ten", "", `ICEBREAKER_TCP_MAX_CONNS: tcp.max_conns: "ten" is not an integer`, true},
		{"bad bool", "ICEBREAKER_TURN_ENABLED=yes please", "", `ICEBREAKER_TURN_ENABLED: turn.enabled: "yes please" is not a boolean (true or false)`, true},
		{"bad duration", "ICEBREAKER_TURN_NONCE_TTL=10", "", `ICEBREAKER_TURN_NONCE_TTL: turn.nonce_ttl: "10" is not a duration`, true},
		{"bad user", "ICEBREAKER_TURN_USERS=alice:x,bob", "", `ICEBREAKER_TURN_USERS: turn.users[1]: "bob" is not USERNAME:PASSWORD`, true},
		{"bad level", "ICEBREAKER_LOG_LEVEL=loud", "", `ICEBREAKER_LOG_LEVEL: log.level: "loud" is not a level (debug, info, warn or error)`, false},
		{"bad listen item", "ICEBREAKER_LISTEN=127.0.0.1,nowhere", "", `ICEBREAKER_LISTEN: listen[1]: "nowhere" is not an IP address or IP:PORT`, false},
		{"bad bandwidth", "ICEBREAKER_TURN_QUOTAS_BANDWIDTH_PER_USER=fast", "", `ICEBREAKER_TURN_QUOTAS_BANDWIDTH_PER_USER: turn.quotas.bandwidth_per_user: "fast" is not a bandwidth`, false},
		{"empty realm", "ICEBREAKER_TURN_REALM=", "", "ICEBREAKER_TURN_REALM: turn.realm: is empty", false},
		{"bad metrics listen", "ICEBREAKER_METRICS_LISTEN=127.0.0.1:0", "", "ICEBREAKER_METRICS_LISTEN: metrics.listen: port 0 would be", false},
		{"metrics listen", "ICEBREAKER_METRICS_LISTEN=[::1]:9641", "", "", false},
		{"env fixes file", "ICEBREAKER_TURN_NONCE_SECRET=0123456789abcdef0123", file, "", false},
		{"file error stays the file's", "ICEBREAKER_LOG_LEVEL=debug", file, file + ":2: turn.nonce_secret: is 5 bytes", false},
		{"env replaces the file's list", "ICEBREAKER_TURN_USERS=a:b,a:c", file, "ICEBREAKER_TURN_USERS: turn.users[1].username", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, src, err := Read(tt.file, []string{tt.env})
			if err == nil {
				err = src.Blame(c.Validate())
			} else if !tt.readErr {
				t.Fatalf("Read: %v", err)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %v, want prefix %q", err, tt.want)
			}
		})
	}
}
