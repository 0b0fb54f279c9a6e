package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateOps(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, key string // key "" means valid
	}{
		{"default", "", ""},
		{"socket", "admin: {listen: /run/ib/admin.sock}", ""},
		{"loopback", "admin: {listen: \"127.0.0.1:9642\"}", ""},
		{"off", "admin: {listen: none}", ""},
		{"public", "admin: {listen: \"0.0.0.0:9642\"}", "admin.listen"},
		{"port 0", "admin: {listen: \"127.0.0.1:0\"}", "admin.listen"},
		{"garbage", "admin: {listen: admin}", "admin.listen"},
		{"long path", "admin: {listen: /" + strings.Repeat("x", 120) + "}", "admin.listen"},
		{"negative timeout", "drain: {timeout: -1s}", "drain.timeout"},
		{"alternate", "drain: {alternate_server: \"192.0.2.1:3478\"}", ""},
		{"alternate no port", "drain: {alternate_server: 192.0.2.1}", "drain.alternate_server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if tc.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Key != tc.key {
				t.Fatalf("error %v, want one for %s", err, tc.key)
			}
		})
	}
}

func TestReloadChanges(t *testing.T) {
	a := Default()
	b := Default()
	b.TURN.Users = []User{{"alice", "pw"}}
	b.TURN.Policy.AllowPeers = []string{"10.0.0.0/8"}
	b.Log.Level = "debug"
	b.Drain.Timeout = time.Minute
	a.TLS.Cert, a.TLS.Key = "old.pem", "old.key"
	b.TLS.Cert, b.TLS.Key = "new.pem", "new.key"
	if got := a.ReloadChanges(b); len(got) != 0 {
		t.Errorf("reloadable changes reported as needing a restart: %v", got)
	}
	b.Listen = []string{"127.0.0.1:3478"}
	b.TURN.Realm = "other"
	b.TCP.IdleTimeout = time.Hour
	b.TURN.Quotas.ErrorRatePerIP = 7
	if got := a.ReloadChanges(b); !slices.Equal(got, []string{"listen", "tcp.idle_timeout", "turn.realm", "turn.quotas"}) {
		t.Errorf("ReloadChanges = %v, want [listen tcp.idle_timeout turn.realm turn.quotas]", got)
	}
	b = Default()
	b.TLS.Cert, b.TLS.Key = "new.pem", "new.key"
	if got := Default().ReloadChanges(b); !slices.Equal(got, []string{"tls.cert"}) {
		t.Errorf("turning TLS on: ReloadChanges = %v, want [tls.cert]", got)
	}
}
