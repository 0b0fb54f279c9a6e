package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rendezvousCall dials url, binds, sends msg and returns the answer to it
// (the first message after its ack).
func rendezvousCall(t *testing.T, url string, hc *http.Client, msg string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer ws.CloseNow()
	for _, m := range []string{`{"type":"bind","appid":"icebreaker.test","side":"abcd","id":"1"}`, msg} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	acks := 0
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		switch m["type"] {
		case "welcome":
		case "ack":
			acks++
		default:
			if acks != 2 {
				t.Fatalf("%s before both acks", b)
			}
			return m
		}
	}
}

var rendezvousLine = regexp.MustCompile(`(?m)^  rendezvous (wss?)://(\S+)/v1`)

// TestServeRendezvousTLS: wss:// with the server's certificate, and the
// ICE servers behind a token, with a turns: URI since TLS is on.
func TestServeRendezvousTLS(t *testing.T) {
	certFile, keyFile, pool := writeTestCert(t)
	file := filepath.Join(t.TempDir(), "icebreaker.yaml")
	writeFile(t, file, "rendezvous:\n  listen: 127.0.0.1:0\n  tls_listen: 127.0.0.1:0\n  transit_listen: \"off\"\n  db: none\n"+
		"  ice_servers:\n    token: let-me-in\n")
	r := startServe(t, "--config", file, "--listen", "127.0.0.1", "--port", "0", "--tls-port", "0",
		"--tls-cert", certFile, "--tls-key", keyFile, "--user-db", "none", "--rest-secret", "s3cret")
	r.waitFor(t, regexp.MustCompile(`rendezvous wss://`))
	urls := map[string]string{}
	for _, m := range rendezvousLine.FindAllStringSubmatch(r.out.String(), -1) {
		urls[m[1]] = m[1] + "://" + m[2] + "/v1"
	}
	if len(urls) != 2 {
		t.Fatalf("want a ws and a wss line:\n%s", r.out)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if m := rendezvousCall(t, urls["wss"], hc, `{"type":"icebreaker-ice-servers","id":"2"}`); m["type"] != "error" || !strings.Contains(m["error"].(string), "wrong token") {
		t.Errorf("without the token: %v", m)
	}
	m := rendezvousCall(t, urls["wss"], hc, `{"type":"icebreaker-ice-servers","id":"2","token":"let-me-in"}`)
	b, _ := json.Marshal(m)
	if m["type"] != "icebreaker-ice-servers" || !strings.Contains(string(b), `"turns:127.0.0.1:`) || !strings.Contains(string(b), `"stun:127.0.0.1:`) {
		t.Errorf("with the token over wss: %s", b)
	}
	if m := rendezvousCall(t, urls["ws"], nil, `{"type":"ping","ping":3,"id":"2"}`); m["type"] != "pong" {
		t.Errorf("ws ping: %v", m)
	}
}

// TestServeRendezvousNoICEServers: without a REST secret the command is
// refused, and no credential appears.
func TestServeRendezvousNoICEServers(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--user", "alice:pw",
		"--rendezvous", "127.0.0.1:0", "--transit-relay", "127.0.0.1:0", "--rendezvous-db", "none", "--motd", "hello")
	m := rendezvousLine.FindStringSubmatch(r.waitFor(t, rendezvousLine)[0])
	got := rendezvousCall(t, "ws://"+m[2]+"/v1", nil, `{"type":"icebreaker-ice-servers","id":"2"}`)
	if got["type"] != "error" || !strings.Contains(got["error"].(string), "no TURN REST secret") {
		t.Errorf("got %v", got)
	}
	if !regexp.MustCompile(`(?m)^  transit relay 127\.0\.0\.1:\d+$`).MatchString(r.out.String()) {
		t.Errorf("no transit relay line:\n%s", r.out)
	}
}

// TestServeRendezvousDisabled: rendezvous.disabled (here from the
// environment) is the error in every welcome.
func TestServeRendezvousDisabled(t *testing.T) {
	t.Setenv("ICEBREAKER_RENDEZVOUS_DISABLED", "this server has moved")
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none",
		"--rendezvous", "127.0.0.1:0", "--transit-relay", "off", "--rendezvous-db", "none")
	m := r.waitFor(t, rendezvousLine)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+m[2]+"/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		Type    string
		Welcome map[string]string
	}
	if err := json.Unmarshal(b, &w); err != nil || w.Type != "welcome" || w.Welcome["error"] != "this server has moved" {
		t.Fatalf("welcome %s (%v)", b, err)
	}
}
