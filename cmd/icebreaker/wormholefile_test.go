package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/wormhole"
	"github.com/icebreaker-net/icebreaker/wormhole/transfer"
	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

// Files and directories between the built icebreaker binary and the real
// Python `wormhole` client, by magic-wormhole's transit, through the
// reference mailbox server; the transit relay is the reference one or
// ours (wormhole/transitrelay), all on loopback.

// pyTransit returns the Python client and its arguments for a mailbox and
// a transit relay.
func pyTransit(t *testing.T, url, relay string) (string, []string) {
	t.Helper()
	py, args := pythonWormhole(t, url)
	return py, append(args, "--transit-helper", "tcp:"+relay)
}

// transferCtx bounds one transfer of a (sub)test: the context of
// wormholeTest covers its setup, which under load can take much of it.
func transferCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// doneEvent returns the --json done event of out, failing without one.
func doneEvent(t *testing.T, who, out string) map[string]any {
	t.Helper()
	ev := lastEvent(jsonEvents(t, out), "done")
	if ev == nil {
		t.Fatalf("%s printed no done event:\n%s", who, out)
	}
	return ev
}

// TestWormholeFileRelayed: a 2 MB random file from `icebreaker send` to
// `wormhole receive`, and from `wormhole send` to `icebreaker receive`,
// through the reference transit relay and through ours. Neither side
// listens (Python's --no-listen, our --relay-only), so the relay carries
// the data; the file and the SHA-256 that icebreaker reports match, and
// our relay counts the bytes.
func TestWormholeFileRelayed(t *testing.T) {
	t.Parallel()
	_, bin, mb := wormholeTest(t)
	ref := refpeers.StartTransitRelay(t)
	ours, oursAddr := refpeers.StartOurTransitRelay(t)
	const size = 2 << 20
	t.Run("group", func(t *testing.T) {
		for i, relay := range []struct{ name, addr string }{{"reference", ref.Addr}, {"ours", oursAddr}} {
			py, pyArgs := pyTransit(t, mb.URL, relay.addr)
			ibArgs := []string{"--rendezvous", mb.URL, "--transit-helper", "tcp:" + relay.addr, "--relay-only", "--json"}
			t.Run(relay.name+"/icebreaker-to-wormhole", func(t *testing.T) {
				t.Parallel()
				ctx := transferCtx(t)
				src, dst := t.TempDir(), t.TempDir()
				data := randomFile(t, src, "payload.bin", size)
				send := testutil.Start(t, testutil.Command(ctx, bin, append([]string{"send", filepath.Join(src, "payload.bin")}, ibArgs...)...))
				code := jsonCode(t, ctx, send)
				out, err := testutil.Command(ctx, py, append(pyArgs, "receive", "--no-listen", "--accept-file", "--hide-progress",
					"--output-file", filepath.Join(dst, "got.bin"), code)...).CombinedOutput()
				if err != nil {
					t.Fatalf("wormhole receive: %v\n%s\nicebreaker send:\n%s", err, out, send.Output())
				}
				if err := send.Wait(); err != nil {
					t.Fatalf("icebreaker send: %v\n%s", err, send.Output())
				}
				checkReceived(t, filepath.Join(dst, "got.bin"), data, send.Output(), relay.addr)
			})
			t.Run(relay.name+"/wormhole-to-icebreaker", func(t *testing.T) {
				t.Parallel()
				ctx := transferCtx(t)
				src, dst := t.TempDir(), t.TempDir()
				data := randomFile(t, src, "payload.bin", size)
				code := fmt.Sprintf("%d-transit-file", 60+i)
				send := testutil.Start(t, testutil.Command(ctx, py, append(pyArgs, "send", "--no-listen", "--hide-progress",
					"--code", code, filepath.Join(src, "payload.bin"))...))
				out, err := testutil.Command(ctx, bin, append([]string{"receive", "--accept-file", "-o", dst, code}, ibArgs...)...).Output()
				if err != nil {
					t.Fatalf("icebreaker receive: %v\n%s\nwormhole send:\n%s", err, out, send.Output())
				}
				if err := send.Wait(); err != nil {
					t.Fatalf("wormhole send: %v\n%s", err, send.Output())
				}
				checkReceived(t, filepath.Join(dst, "payload.bin"), data, string(out), relay.addr)
			})
		}
	})
	if st := ours.Stats(); st.Paired < 2 || st.Bytes < 2*size {
		t.Errorf("our relay: %d pairs, %d bytes; want 2 transfers of %d bytes", st.Paired, st.Bytes, size)
	}
}

// checkReceived compares the file at path with data, and icebreaker's
// --json output with its SHA-256 and the relay.
func checkReceived(t *testing.T, path string, data []byte, out, relay string) {
	t.Helper()
	done := doneEvent(t, "icebreaker", out)
	if p := lastEvent(jsonEvents(t, out), "path"); p == nil || p["path"] != "relay" {
		t.Errorf("path event %v, want the relay", p)
	}
	if lastEvent(jsonEvents(t, out), "progress") == nil {
		t.Errorf("no progress event:\n%s", out)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%s: %v (%d bytes, want %d equal ones)", path, err, len(got), len(data))
	}
	sum := sha256.Sum256(data)
	if done["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("done: sha256 %v, want %x", done["sha256"], sum)
	}
	if done["path"] != "relay" || done["via"] != "transit relay "+relay {
		t.Errorf("done: path %v via %v, want the relay %s", done["path"], done["via"], relay)
	}
}

// treeFiles is the directory the directory tests send: nested files, an
// executable, a private file (and emptyDir).
var treeFiles = []struct {
	path string
	mode fs.FileMode
	body string
}{
	{"top.txt", 0o644, "top\n"},
	{"bin/run.sh", 0o755, "#!/bin/sh\necho run\n"},
	{"deep/er/secret", 0o600, strings.Repeat("s", 70000)},
}

// emptyDir is an empty directory of the tree, with its mode.
const emptyDir, emptyDirMode = "nothing/here", fs.FileMode(0o750)

func writeTreeFiles(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, emptyDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, emptyDir), emptyDirMode); err != nil {
		t.Fatal(err)
	}
	for _, f := range treeFiles {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// checkTreeFiles checks the files of the tree in dir and, when
// emptyDirs, the empty directory (`wormhole send` does not send those).
func checkTreeFiles(t *testing.T, dir string, emptyDirs bool) {
	t.Helper()
	if fi, err := os.Stat(filepath.Join(dir, emptyDir)); emptyDirs && (err != nil || !fi.IsDir() || fi.Mode().Perm() != emptyDirMode) {
		t.Errorf("the empty directory %s: %v, %v", emptyDir, fi, err)
	}
	for _, f := range treeFiles {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		got, err := os.ReadFile(p)
		if err != nil || string(got) != f.body {
			t.Errorf("%s: %v (%d bytes)", p, err, len(got))
			continue
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), f.mode)
		}
	}
}

// TestWormholeDirectory: a directory with nested files each way between
// icebreaker and `wormhole`, on a direct loopback path (icebreaker listens
// on 127.0.0.1, Python does not, so Python dials us); contents and file
// modes arrive. A second send into the same place is refused without
// --force (on both sides) and replaces it with --force.
func TestWormholeDirectory(t *testing.T) {
	t.Parallel()
	_, bin, mb := wormholeTest(t)
	relay := refpeers.StartTransitRelay(t)
	py, pyArgs := pyTransit(t, mb.URL, relay.Addr)
	ibArgs := []string{"--rendezvous", mb.URL, "--transit-helper", "tcp:" + relay.Addr, "--ip", "127.0.0.1", "--json"}
	src := filepath.Join(t.TempDir(), "tree")
	writeTreeFiles(t, src)

	t.Run("icebreaker-to-wormhole", func(t *testing.T) {
		t.Parallel()
		ctx := transferCtx(t)
		dst := t.TempDir()
		send := testutil.Start(t, testutil.Command(ctx, bin, append([]string{"send", src}, ibArgs...)...))
		code := jsonCode(t, ctx, send)
		recv := testutil.Command(ctx, py, append(pyArgs, "receive", "--no-listen", "--accept-file", "--hide-progress", code)...)
		recv.Dir = dst
		if out, err := recv.CombinedOutput(); err != nil {
			t.Fatalf("wormhole receive: %v\n%s\nicebreaker send:\n%s", err, out, send.Output())
		}
		if err := send.Wait(); err != nil {
			t.Fatalf("icebreaker send: %v\n%s", err, send.Output())
		}
		if done := doneEvent(t, "send", send.Output()); done["kind"] != "directory" || done["path"] != "direct" {
			t.Errorf("done event %v: want a directory on a direct path", done)
		}
		checkTreeFiles(t, filepath.Join(dst, "tree"), true)
	})

	t.Run("wormhole-to-icebreaker", func(t *testing.T) {
		t.Parallel()
		ctx := transferCtx(t)
		dst := t.TempDir()
		for i, force := range []string{"", "", "--force"} {
			code := fmt.Sprintf("%d-transit-tree", 70+i)
			send := testutil.Start(t, testutil.Command(ctx, py, append(pyArgs, "send", "--no-listen", "--hide-progress", "--code", code, src)...))
			args := append([]string{"receive", "--accept-file", "-o", dst, code}, ibArgs...)
			if force != "" {
				args = append(args, force)
			}
			recv := testutil.Command(ctx, bin, args...)
			out, err := recv.CombinedOutput()
			serr := send.Wait()
			if i == 1 { // the directory exists: refused on both sides
				if rc := recv.ProcessState.ExitCode(); rc != 1 || !strings.Contains(string(out), "refusing to overwrite") {
					t.Errorf("second receive without --force: exit %d\n%s", rc, out)
				}
				if serr == nil || !strings.Contains(send.Output(), "refusing to overwrite") {
					t.Errorf("wormhole send to a refusing receiver: %v\n%s", serr, send.Output())
				}
				if err := os.WriteFile(filepath.Join(dst, "tree", "stale"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err != nil || serr != nil {
				t.Fatalf("receive %s: %v\n%s\nwormhole send: %v\n%s", force, err, out, serr, send.Output())
			}
			if done := doneEvent(t, "receive", string(out)); done["kind"] != "directory" || done["path"] != "direct" {
				t.Errorf("done event %v: want a directory on a direct path", done)
			}
			checkTreeFiles(t, filepath.Join(dst, "tree"), false)
		}
		if _, err := os.Stat(filepath.Join(dst, "tree", "stale")); err == nil {
			t.Errorf("--force kept a file of the old directory")
		}
		ents, _ := os.ReadDir(dst)
		if len(ents) != 1 {
			t.Errorf("-o holds %d entries, want the directory only (no partial files left): %v", len(ents), ents)
		}
	})
}

// TestWormholeReceiveRefuses: a sender (this test, speaking the protocol
// with package transfer) offers what `icebreaker receive` must refuse: a
// directory whose zip holds "../escaped" (refused after the transfer:
// nothing is written outside -o, nothing left in it, and no ack, so the
// sender fails too), and a directory larger than the free space (declined
// before any transfer, the sender told why).
func TestWormholeReceiveRefuses(t *testing.T) {
	t.Parallel()
	_, bin, mb := wormholeTest(t)
	_, relay := refpeers.StartOurTransitRelay(t)
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	for _, name := range []string{"fine.txt", "../escaped"} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("payload of " + name))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, says string
		numBytes   int64
		declined   bool
	}{
		{"traversal", "unsafe zip", 100, false},
		{"no space", "not enough space", 1 << 62, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := transferCtx(t)
			w, err := wormhole.Allocate(ctx, wormhole.Config{URL: mb.URL})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(ctx)
			outer := t.TempDir()
			dst := filepath.Join(outer, "out")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			recv := testutil.Start(t, testutil.Command(ctx, bin, "receive", "--rendezvous", mb.URL, "--transit-helper", "tcp:"+relay,
				"--relay-only", "--accept-file", "-o", dst, w.Code().String()))
			offer := transfer.Offer{Kind: transfer.Directory, Name: "tree", Size: int64(z.Len()), NumBytes: tc.numBytes, NumFiles: 2}
			_, serr := transfer.Send(ctx, w, transfer.Config{Relays: []string{relay}}, offer, bytes.NewReader(z.Bytes()))
			rerr := recv.Wait()
			if rerr == nil || !strings.Contains(recv.Output(), tc.says) {
				t.Errorf("icebreaker receive: %v\n%s", rerr, recv.Output())
			}
			switch {
			case serr == nil:
				t.Errorf("the sender got an ack")
			case tc.declined && (!errors.Is(serr, transfer.ErrDeclined) || !strings.Contains(serr.Error(), tc.says)):
				t.Errorf("the sender: %v, want a decline that says %q", serr, tc.says)
			}
			for dir, want := range map[string]int{outer: 1, dst: 0} {
				if ents, _ := os.ReadDir(dir); len(ents) != want {
					t.Errorf("%s holds %v, want %d entries", dir, ents, want)
				}
			}
		})
	}
}

// TestTransitFlags: the transit relay of --transit-helper and its default,
// and how the peer flags map onto transit.
func TestTransitFlags(t *testing.T) {
	for _, tc := range []struct {
		helper, rendezvous string
		want               []string
	}{
		{"", wormhole.DefaultRendezvousURL, []string{transit.DefaultRelay}},
		{"", "ws://127.0.0.1:4000/v1", []string{"127.0.0.1:4001"}},
		{"", "wss://[::1]:4443/v1", []string{"[::1]:4001"}},
		{"tcp:127.0.0.1:9", "ws://127.0.0.1:4000/v1", []string{"127.0.0.1:9"}},
		{"off", "ws://127.0.0.1:4000/v1", nil},
	} {
		to := transitOptions{helper: tc.helper}
		if got, err := to.relays(tc.rendezvous); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("--transit-helper %q with %s: %q, %v; want %q", tc.helper, tc.rendezvous, got, err, tc.want)
		}
	}
	t.Setenv(transitHelperEnv, "tcp:127.0.0.1:7")
	var fromEnv transitOptions
	fromEnv.register(newFlagSet("send", io.Discard))
	if got, err := fromEnv.relays(wormhole.DefaultRendezvousURL); err != nil || !slices.Equal(got, []string{"127.0.0.1:7"}) {
		t.Errorf("$%s: %q, %v", transitHelperEnv, got, err)
	}
	to := transitOptions{helper: "tcp:127.0.0.1:9"}
	for name, po := range map[string]peerOptions{
		"relay only": {gather: iceOptions{relayOnly: true}},
		"ip":         {gather: iceOptions{ips: listFlag{"10.0.0.0/8", "127.0.0.1"}}},
		"default":    {},
		"no relay":   {noRelay: true},
	} {
		o := &wormholeOptions{}
		cfg, err := transferConfig(o, &po, &to, newTransferReport(o, io.Discard), io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := map[string]string{"relay only": "", "ip": "127.0.0.1:0", "default": ":0", "no relay": ":0"}[name]
		if cfg.ListenAddr != want || cfg.NoDirect != (name == "relay only") || cfg.NoRelay != (name == "no relay") ||
			(len(cfg.Relays) == 0) != (name == "no relay") {
			t.Errorf("%s: %+v", name, cfg)
		}
	}
	for _, args := range [][]string{
		{"send", "--text", "x", "--transit-helper", "tor:x.onion:80"},
		{"send", "--text", "x", "--no-relay", "--transit-helper", "tcp:127.0.0.1:9"},
		{"receive", "--transit-helper", "tcp:127.0.0.1:0", "1-a-b"},
	} {
		var o, e strings.Builder
		if rc := run(t.Context(), args, &o, &e); rc != 2 || !strings.Contains(e.String(), "transit-helper") {
			t.Errorf("%q: exit %d, want 2 (usage); stderr %q", args, rc, e.String())
		}
	}
}
