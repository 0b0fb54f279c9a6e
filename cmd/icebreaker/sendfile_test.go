package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// File transfers between two built icebreaker binaries over ICE and QUIC
// (package peer), on loopback, through the reference mailbox server.

// loopbackPeer keeps the candidates on 127.0.0.1.
var loopbackPeer = []string{"--loopback", "--ip", "127.0.0.1"}

// jsonEvents parses the --json lines of out.
func jsonEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// lastEvent returns the last event of the kind, or nil.
func lastEvent(evs []map[string]any, kind string) map[string]any {
	var found map[string]any
	for _, ev := range evs {
		if ev["event"] == kind {
			found = ev
		}
	}
	return found
}

// randomFile writes n random bytes to dir/name and returns them.
func randomFile(t *testing.T, dir, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSendFileBetweenPeers: `icebreaker send FILE` to `icebreaker
// receive --accept-file -o DIR` moves 3 MiB over ICE and QUIC on a direct
// host path; both print the same SHA-256, which is the file's, and the path.
func TestSendFileBetweenPeers(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	src, dst := t.TempDir(), t.TempDir()
	data := randomFile(t, src, "payload.bin", 3<<20)
	sendOut, recvOut := transferFile(t, ctx, bin, mb.URL, testutil.Command(ctx, bin, sendArgs(mb.URL, filepath.Join(src, "payload.bin"))...),
		dst, "payload.bin", data)
	sum := sha256.Sum256(data)
	for who, o := range map[string]string{"send": sendOut, "receive": recvOut} {
		done := lastEvent(jsonEvents(t, o), "done")
		switch {
		case done == nil:
			t.Fatalf("%s printed no done event:\n%s", who, o)
		case done["sha256"] != hex.EncodeToString(sum[:]):
			t.Errorf("%s: sha256 %v, want %x", who, done["sha256"], sum)
		case done["path"] != "direct" || done["local_type"] != "host" || done["remote_type"] != "host":
			t.Errorf("%s: path %v %v/%v, want a direct host pair", who, done["path"], done["local_type"], done["remote_type"])
		}
		if lastEvent(jsonEvents(t, o), "progress") == nil {
			t.Errorf("%s printed no progress event:\n%s", who, o)
		}
	}
}

// jsonCode waits for the code event of a --json sender.
func jsonCode(t *testing.T, ctx context.Context, p *testutil.Process) string {
	t.Helper()
	if err := p.WaitForOutput(ctx, `"event":"code"`); err != nil {
		t.Fatal(err)
	}
	out := p.Output()
	ev := lastEvent(jsonEvents(t, out[:strings.LastIndexByte(out, '\n')+1]), "code")
	if ev == nil {
		t.Fatalf("no code event in %q", p.Output())
	}
	return ev["code"].(string)
}

// TestSendFileRefusals: the receiver refuses, and both sides say why and
// fail: a wrong code (key confirmation fails on both sides at once, no
// second try), no --accept-file with standard input not a terminal, and a
// file of that name already there without --force.
func TestSendFileRefusals(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	src, dst := t.TempDir(), t.TempDir()
	randomFile(t, src, "payload.bin", 1000)
	existing := []byte("keep me")
	if err := os.WriteFile(filepath.Join(dst, "payload.bin"), existing, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		recvCode   string // empty: the sender's
		recvArgs   []string
		sendErr    string
		receiveErr string
	}{
		{"wrong code", "30-wrong-code", []string{"--accept-file"}, "wrong code", "wrong code"},
		{"not a terminal", "", nil, "the receiver declined", "use --accept-file"},
		{"exists", "", []string{"--accept-file"}, "the receiver declined", "refusing to overwrite"},
	} {
		send := testutil.Start(t, testutil.Command(ctx, bin, append([]string{"send", filepath.Join(src, "payload.bin"),
			"--rendezvous", mb.URL, "--code", "30-right-code"}, loopbackPeer...)...))
		code := tc.recvCode
		if code == "" {
			code = "30-right-code"
		}
		dir := dst
		if tc.name != "exists" {
			dir = t.TempDir()
		}
		args := append([]string{"receive", "--rendezvous", mb.URL, "-o", dir, code}, loopbackPeer...)
		recv := testutil.Command(ctx, bin, append(args, tc.recvArgs...)...)
		out, err := recv.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.receiveErr) {
			t.Errorf("%s: receive: %v, want an error saying %q:\n%s", tc.name, err, tc.receiveErr, out)
		}
		if err := send.Wait(); err == nil || !strings.Contains(send.Output(), tc.sendErr) {
			t.Errorf("%s: send: %v, want an error saying %q:\n%s", tc.name, err, tc.sendErr, send.Output())
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "payload.bin")); !bytes.Equal(got, existing) {
		t.Errorf("the existing file was changed: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dst, "*icebreaker-part*")); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}
