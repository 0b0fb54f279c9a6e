//go:build unix

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// The rendezvous of `icebreaker serve` (the built binary) with the real
// magic-wormhole client: a file through our transit relay, a restart of
// serve in the middle of a rendezvous, and the icebreaker-ice-servers
// command, whose TURN credentials the TURN server then accepts.

// rendezvousServe is a running serve with its rendezvous on free ports.
type rendezvousServe struct {
	*server
	url, transit, metrics string
	db                    string
}

func startRendezvousServe(t *testing.T, ctx context.Context, db string, port, transitPort, metricsPort int, extra ...string) *rendezvousServe {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--rest-secret", turnRESTSecret,
		"--rendezvous", "127.0.0.1:" + strconv.Itoa(port), "--transit-relay", "127.0.0.1:" + strconv.Itoa(transitPort),
		"--rendezvous-db", db, "--metrics", "127.0.0.1:" + strconv.Itoa(metricsPort), "--log-level", "debug"}, extra...)
	s := startServe(t, ctx, nil, args...)
	if err := s.proc.WaitForOutput(ctx, "rendezvous ws://127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Fatal(err)
	}
	return &rendezvousServe{server: s, db: db,
		url:     fmt.Sprintf("ws://127.0.0.1:%d/v1", port),
		transit: fmt.Sprintf("tcp:127.0.0.1:%d", transitPort),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
}

// metric returns the value of the sample that starts with name (with its
// labels) on the metrics endpoint.
func (r *rendezvousServe) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(r.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in\n%s", name, body)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func wormholeCLI(ctx context.Context, t *testing.T, bin string, r *rendezvousServe, args ...string) *exec.Cmd {
	cmd := testutil.Command(ctx, bin, append([]string{"--relay-url", r.url, "--transit-helper", r.transit}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	return cmd
}

func TestRendezvousFileThroughTransitRelay(t *testing.T) {
	bin := testutil.RequireBinary(t, "wormhole")
	ctx := testContext(t)
	dir := t.TempDir()
	r := startRendezvousServe(t, ctx, filepath.Join(dir, "r.db"), testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t))
	data := make([]byte, 256<<10)
	rand.Read(data)
	src := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	const code = "21-file-relay"
	// --no-listen on both sides: on loopback a direct hint would win.
	sender := testutil.Start(t, wormholeCLI(ctx, t, bin, r, "send", "--no-listen", "--code", code, src))
	dst := filepath.Join(dir, "received.bin")
	out, err := wormholeCLI(ctx, t, bin, r, "receive", "--no-listen", "--accept-file", "-o", dst, code).CombinedOutput()
	if err != nil {
		t.Fatalf("receive: %v\n%s\nsender:\n%s", err, out, sender.Output())
	}
	if err := sender.Wait(); err != nil {
		t.Fatalf("send: %v\n%s", err, sender.Output())
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	if n := r.metric(t, "icebreaker_transit_bytes_total"); n < float64(len(data)) {
		t.Errorf("the transit relay carried %v bytes, want at least the file's %d", n, len(data))
	}
	if n := r.metric(t, "icebreaker_transit_pairs_total"); n != 1 {
		t.Errorf("transit pairs %v, want 1", n)
	}
	if !strings.Contains(r.proc.Output(), "transit relay pair ended") {
		t.Errorf("no usage record for the pair in the log")
	}
}

// TestRendezvousRestart stops serve (SIGTERM) after the sender has added
// its PAKE message and starts it again on the same database; the receiver
// then finds the sender's mailbox, and the sender reconnects and finishes.
func TestRendezvousRestart(t *testing.T) {
	bin := testutil.RequireBinary(t, "wormhole")
	ctx := testContext(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")
	port, transitPort, metricsPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	r := startRendezvousServe(t, ctx, db, port, transitPort, metricsPort)
	const code, text = "8-restart-survivor", "a message that outlived its server"
	sender := testutil.Start(t, wormholeCLI(ctx, t, bin, r, "send", "--code", code, "--text", text))
	if err := r.proc.WaitForOutput(ctx, `msg="rendezvous command" type=add`); err != nil {
		t.Fatal(err)
	}
	// No wait for the write-behind flush: a clean stop writes what is
	// pending, and the restart below checks that it did.
	syscall.Kill(r.proc.PID(), syscall.SIGTERM)
	if err := r.proc.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, r.proc.Output())
	}
	r2 := startRendezvousServe(t, ctx, db, port, transitPort, metricsPort)
	if !regexp.MustCompile(`rendezvous state loaded.*mailboxes=1 messages=1`).MatchString(r2.proc.Output()) {
		t.Fatalf("the restarted server did not load the mailbox:\n%s", r2.proc.Output())
	}
	out, err := wormholeCLI(ctx, t, bin, r2, "receive", code).CombinedOutput()
	if err != nil || !strings.Contains(string(out), text) {
		t.Fatalf("receive after restart: %v\n%s", err, out)
	}
	if err := sender.Wait(); err != nil {
		t.Fatalf("sender: %v\n%s", err, sender.Output())
	}
}

// TestRendezvousICEServers asks serve for ICE servers as a bound client
// and allocates on its TURN server with the credentials it handed out;
// with loopback peers allowed, the relay still refuses the rendezvous'
// own ports.
func TestRendezvousICEServers(t *testing.T) {
	ctx := testContext(t)
	rdvPort := testutil.FreePort(t)
	r := startRendezvousServe(t, ctx, "none", rdvPort, testutil.FreePort(t), testutil.FreePort(t), "--allow-peer", "127.0.0.1/32")
	ws, _, err := websocket.Dial(ctx, r.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(m string) {
		if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(typ string) []byte {
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var m struct{ Type string }
			json.Unmarshal(b, &m)
			if m.Type == typ {
				return b
			}
			if m.Type != "ack" && m.Type != "welcome" {
				t.Fatalf("got %s, want %s", b, typ)
			}
		}
	}
	send(`{"type":"bind","appid":"icebreaker.test","side":"0123abcd","id":"1"}`)
	send(`{"type":"icebreaker-ice-servers","id":"2"}`)
	var reply struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"ice_servers"`
		TTL int `json:"ttl"`
	}
	b := read("icebreaker-ice-servers")
	if err := json.Unmarshal(b, &reply); err != nil || len(reply.ICEServers) != 2 || reply.TTL != 300 {
		t.Fatalf("reply %s (%v)", b, err)
	}
	stunURL := "stun:127.0.0.1:" + strconv.Itoa(int(r.udp.Port()))
	turnEntry := reply.ICEServers[1]
	wantTURN := []string{"turn:127.0.0.1:" + strconv.Itoa(int(r.udp.Port())) + "?transport=udp", "turn:127.0.0.1:" + strconv.Itoa(int(r.tcp.Port())) + "?transport=tcp"}
	if reply.ICEServers[0].URLs[0] != stunURL || !slices.Equal(turnEntry.URLs, wantTURN) {
		t.Fatalf("URIs %s, want %s and its TURN", b, stunURL)
	}
	if !strings.HasSuffix(turnEntry.Username, ":0123abcd") || turnEntry.Credential != turn.RESTPassword(turnRESTSecret, turnEntry.Username) {
		t.Errorf("credentials %q %q are not REST credentials of the side under the secret", turnEntry.Username, turnEntry.Credential)
	}
	relay, err := turnclient.Allocate(ctx, turnclient.Config{Server: r.udp.String(), Username: turnEntry.Username, Password: turnEntry.Credential})
	if err != nil {
		t.Fatalf("TURN Allocate with the handed-out credentials: %v", err)
	}
	defer relay.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("to the rendezvous port"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: rdvPort}); err != nil {
		t.Logf("write to the rendezvous port: %v", err) // refused at once or dropped: both fine
	}
	if _, err := relay.WriteTo([]byte("to the peer"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "to the peer" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if n := r.metric(t, `icebreaker_turn_dropped_packets_total{reason="policy"}`); n != 1 {
		t.Errorf("%v packets dropped by the policy, want the one to the rendezvous port", n)
	}

	// The client half of the command (package wormhole) reads the same
	// answer.
	w, err := wormhole.Allocate(ctx, wormhole.Config{URL: r.url})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	servers, ttl, err := w.ICEServers(ctx, "")
	if err != nil || len(servers) != 2 || ttl != 300*time.Second || servers[0].URLs[0] != stunURL || servers[1].Credential == "" {
		t.Errorf("wormhole.ICEServers: %+v, %v, %v", servers, ttl, err)
	}
}
