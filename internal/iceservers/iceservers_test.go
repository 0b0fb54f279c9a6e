package iceservers

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/turn"
)

func TestMint(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := Config{UDPPort: 3478, TCPPort: 3478, TLSPort: 5349, Secret: "s3cret", TTL: 300 * time.Second}
	got, err := c.Mint("rdv.example.org", "", "side1", now)
	if err != nil {
		t.Fatal(err)
	}
	user, pw := turn.RESTCredentials("s3cret", "side1", now.Add(300*time.Second))
	want := []Server{
		{URLs: []string{"stun:rdv.example.org:3478"}},
		{URLs: []string{"turn:rdv.example.org:3478?transport=udp", "turn:rdv.example.org:3478?transport=tcp", "turns:rdv.example.org:5349?transport=tcp"},
			Username: user, Credential: pw},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if user != "1700000300:side1" || pw != turn.RESTPassword("s3cret", user) {
		t.Errorf("credentials %q %q", user, pw)
	}

	for name, tc := range map[string]struct {
		c           Config
		host, token string
		want        []Server
		err         bool
	}{
		"ipv6 host":     {c: Config{UDPPort: 3478}, host: "::1", want: []Server{{URLs: []string{"stun:[::1]:3478"}}}},
		"public host":   {c: Config{UDPPort: 3478, PublicHost: "stun.example.net"}, host: "10.0.0.1", want: []Server{{URLs: []string{"stun:stun.example.net:3478"}}}},
		"no secret":     {c: Config{UDPPort: 3478}, host: "h", want: []Server{{URLs: []string{"stun:h:3478"}}}},
		"wrong token":   {c: Config{UDPPort: 3478, Token: "t"}, host: "h", token: "x", err: true},
		"right token":   {c: Config{UDPPort: 3478, Token: "t"}, host: "h", token: "t", want: []Server{{URLs: []string{"stun:h:3478"}}}},
		"injected host": {c: Config{UDPPort: 3478}, host: "evil/x?y", err: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.c.Mint(tc.host, tc.token, "", now)
			if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, %v; want %+v (error %v)", got, err, tc.want, tc.err)
			}
			if name == "wrong token" && !errors.Is(err, ErrToken) {
				t.Errorf("err %v, want ErrToken", err)
			}
		})
	}
}

// TestMintReply: the reply is the command's type, Mint's servers and the
// TTL in seconds, and a refused Mint is refused.
func TestMintReply(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := Config{UDPPort: 3478, Secret: "s", TTL: 90 * time.Second, Token: "t"}
	got, err := c.MintReply("h", "t", "u", now)
	servers, _ := c.Mint("h", "t", "u", now)
	if err != nil || got.Type != Command || got.TTL != 90 || !reflect.DeepEqual(got.ICEServers, servers) {
		t.Errorf("got %+v, %v", got, err)
	}
	if _, err := c.MintReply("h", "x", "u", now); !errors.Is(err, ErrToken) {
		t.Errorf("wrong token: %v", err)
	}
}

// TestRotatingSecret: with Rotating set, each Mint signs with the secret
// it holds at that moment, and Secret is ignored.
func TestRotatingSecret(t *testing.T) {
	now := time.Unix(1700000000, 0)
	sec := NewSecret("first")
	c := Config{UDPPort: 3478, Secret: "ignored", Rotating: sec, TTL: time.Minute}
	for _, want := range []string{"first", "second"} {
		sec.Set(want)
		got, err := c.Mint("h", "", "u", now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[1].Credential != turn.RESTPassword(want, got[1].Username) {
			t.Errorf("with %q: %+v", want, got)
		}
	}
	sec.Set("")
	if c.HasSecret() {
		t.Error("HasSecret with an empty rotating secret")
	}
	if got, _ := c.Mint("h", "", "u", now); len(got) != 1 {
		t.Errorf("with no secret, want STUN only: %+v", got)
	}
	var zero Secret
	if zero.Get() != "" {
		t.Error("the zero Secret holds something")
	}
}
