package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// Directories, standard input, resume and the receiver's safety checks,
// between two built icebreaker binaries on loopback.

// sendArgs and receiveArgs are the common arguments of the two commands.
func sendArgs(url string, args ...string) []string {
	return append(append([]string{"send", "--rendezvous", url, "--json"}, loopbackPeer...), args...)
}

func receiveArgs(url string, args ...string) []string {
	return append(append([]string{"receive", "--rendezvous", url, "--json"}, loopbackPeer...), args...)
}

// runTransfer runs send (a --json send command) and a receiver with recvArgs
// and the sender's code, and returns their outputs and exit errors.
func runTransfer(t *testing.T, ctx context.Context, bin, url string, send *exec.Cmd, recvArgs ...string) (sendOut, recvOut string, sendErr, recvErr error) {
	t.Helper()
	sp := testutil.Start(t, send)
	code := jsonCode(t, ctx, sp)
	out, recvErr := testutil.Command(ctx, bin, receiveArgs(url, append(recvArgs, code)...)...).CombinedOutput()
	sendErr = sp.Wait()
	return sp.Output(), string(out), sendErr, recvErr
}

// transferFile is runTransfer that fails the test unless both ends succeed
// and dst/name holds data afterwards.
func transferFile(t *testing.T, ctx context.Context, bin, url string, send *exec.Cmd, dst, name string, data []byte) (sendOut, recvOut string) {
	t.Helper()
	sendOut, recvOut, sendErr, recvErr := runTransfer(t, ctx, bin, url, send, "--accept-file", "-o", dst)
	if sendErr != nil || recvErr != nil {
		t.Fatalf("send: %v\n%s\nreceive: %v\n%s", sendErr, sendOut, recvErr, recvOut)
	}
	got, err := os.ReadFile(filepath.Join(dst, name))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received %s: %v (%d bytes, want %d equal ones)", name, err, len(got), len(data))
	}
	return sendOut, recvOut
}

// TestSendDirectory: `icebreaker send DIR` to `receive -o DST` rebuilds
// the tree: file contents, permission bits (setuid dropped), an empty
// directory; symbolic links (one pointing out of the tree) are not sent,
// and the sender says so. A second send into the same DST is refused on
// both sides without --force, and replaces the tree with it.
func TestSendDirectory(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	src, dst := filepath.Join(t.TempDir(), "tree"), t.TempDir()
	files := map[string]fs.FileMode{"top.txt": 0o644, "sub/deep/x.bin": 0o600, "sub/run.sh": 0o755, "sub/suid": 0o4755}
	dirs := map[string]fs.FileMode{"sub": 0o750, "sub/deep": 0o700, "empty": 0o711}
	for d := range dirs {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	content := map[string][]byte{}
	for f, mode := range files {
		b := make([]byte, 1000+len(f)*5000)
		rand.Read(b)
		content[f] = b
		p := filepath.Join(src, f)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for d, mode := range dirs {
		if err := os.Chmod(filepath.Join(src, d), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(src, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("top.txt", filepath.Join(src, "sub", "inside")); err != nil {
		t.Fatal(err)
	}

	send := func() *exec.Cmd { return testutil.Command(ctx, bin, sendArgs(mb.URL, src)...) }
	sendOut, recvOut, sendErr, recvErr := runTransfer(t, ctx, bin, mb.URL, send(), "--accept-file", "-o", dst)
	if sendErr != nil || recvErr != nil {
		t.Fatalf("send: %v\n%s\nreceive: %v\n%s", sendErr, sendOut, recvErr, recvOut)
	}
	got := filepath.Join(dst, "tree")
	for f, mode := range files {
		b, err := os.ReadFile(filepath.Join(got, f))
		if err != nil || !bytes.Equal(b, content[f]) {
			t.Errorf("%s: %v (%d bytes, want %d equal ones)", f, err, len(b), len(content[f]))
		}
		if fi, err := os.Lstat(filepath.Join(got, f)); err == nil && fi.Mode() != mode&fs.ModePerm {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode(), mode&fs.ModePerm)
		}
	}
	for d, mode := range dirs {
		if fi, err := os.Lstat(filepath.Join(got, d)); err != nil || fi.Mode() != fs.ModeDir|mode {
			t.Errorf("directory %s: %v %v, want %v", d, fi.Mode(), err, fs.ModeDir|mode)
		}
	}
	for _, l := range []string{"escape", "sub/inside"} {
		if _, err := os.Lstat(filepath.Join(got, l)); !os.IsNotExist(err) {
			t.Errorf("symbolic link %s: %v, want it not sent", l, err)
		}
		if !strings.Contains(sendOut, "not sending "+filepath.Join(src, l)) {
			t.Errorf("the sender does not say that it skips %s:\n%s", l, sendOut)
		}
	}
	sd, rd := lastEvent(jsonEvents(t, sendOut), "done"), lastEvent(jsonEvents(t, recvOut), "done")
	if sd == nil || rd == nil || sd["sha256"] != rd["sha256"] || rd["files"] != float64(len(files)) || rd["dirs"] != float64(len(dirs)) {
		t.Errorf("done events: send %v, receive %v", sd, rd)
	}

	// The same again: the tree exists.
	if err := os.WriteFile(filepath.Join(got, "mine"), []byte("local"), 0o600); err != nil {
		t.Fatal(err)
	}
	sendOut, recvOut, sendErr, recvErr = runTransfer(t, ctx, bin, mb.URL, send(), "--accept-file", "-o", dst)
	if recvErr == nil || !strings.Contains(recvOut, "refusing to overwrite") ||
		sendErr == nil || !strings.Contains(sendOut, "the receiver declined: refusing to overwrite") {
		t.Errorf("into an existing tree: send %v\n%s\nreceive %v\n%s", sendErr, sendOut, recvErr, recvOut)
	}
	if _, err := os.Stat(filepath.Join(got, "mine")); err != nil {
		t.Errorf("the refused transfer changed the tree: %v", err)
	}
	sendOut, recvOut, sendErr, recvErr = runTransfer(t, ctx, bin, mb.URL, send(), "--accept-file", "--force", "-o", dst)
	if sendErr != nil || recvErr != nil {
		t.Fatalf("--force: send: %v\n%s\nreceive: %v\n%s", sendErr, sendOut, recvErr, recvOut)
	}
	if _, err := os.Stat(filepath.Join(got, "mine")); !os.IsNotExist(err) {
		t.Errorf("--force kept a file of the replaced tree: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dst, "*icebreaker-part*")); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// TestSendStdin: `icebreaker send - --name N` streams standard input of
// unknown size; the receiver saves it as N and both ends print its SHA-256.
func TestSendStdin(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	dst := t.TempDir()
	data := make([]byte, 1<<20+12345)
	rand.Read(data)
	cmd := testutil.Command(ctx, bin, sendArgs(mb.URL, "-", "--name", "piped.bin")...)
	cmd.Stdin = bytes.NewReader(data)
	sendOut, recvOut := transferFile(t, ctx, bin, mb.URL, cmd, dst, "piped.bin", data)
	sum := sha256.Sum256(data)
	for who, o := range map[string]string{"send": sendOut, "receive": recvOut} {
		if d := lastEvent(jsonEvents(t, o), "done"); d == nil || d["sha256"] != hex.EncodeToString(sum[:]) || d["bytes"] != float64(len(data)) {
			t.Errorf("%s: done %v, want sha256 %x and %d bytes", who, d, sum, len(data))
		}
	}
}

// TestSendResume: the receiver is killed halfway through a rate-limited
// transfer (the kill waits for its progress event past a quarter of the
// file); the partial file is kept, and a new send with a new code resumes
// it: fewer bytes cross than the file has, and the whole file's SHA-256
// matches.
func TestSendResume(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	src, dst := t.TempDir(), t.TempDir()
	const size = 4 << 20
	data := randomFile(t, src, "big.bin", size)
	file := filepath.Join(src, "big.bin")

	send := testutil.Start(t, testutil.Command(ctx, bin, sendArgs(mb.URL, file, "--limit-rate", "1M")...))
	code := jsonCode(t, ctx, send)
	recv := testutil.Start(t, testutil.Command(ctx, bin, receiveArgs(mb.URL, "--accept-file", "-o", dst, code)...))
	err := recv.WaitFor(ctx, "progress past 1 MiB", func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			var n int64
			if _, err := fmt.Sscanf(line, `{"bytes":%d,"event":"progress"`, &n); err == nil && n >= 1<<20 {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%v\nreceive:\n%s", err, recv.Output())
	}
	recv.Kill()
	send.Kill()
	<-recv.Done()
	<-send.Done()
	fi, err := os.Stat(filepath.Join(dst, "big.bin"+partSuffix))
	if err != nil || fi.Size() < 1<<20 || fi.Size() >= size {
		t.Fatalf("partial file after the kill: %v, %v", fi, err)
	}
	t.Logf("the receiver was killed with %d bytes", fi.Size())

	sendOut, recvOut := transferFile(t, ctx, bin, mb.URL, testutil.Command(ctx, bin, sendArgs(mb.URL, file)...), dst, "big.bin", data)
	sum := sha256.Sum256(data)
	for who, o := range map[string]string{"send": sendOut, "receive": recvOut} {
		d := lastEvent(jsonEvents(t, o), "done")
		switch {
		case d == nil:
			t.Fatalf("%s: no done event\n%s", who, o)
		case d["sha256"] != hex.EncodeToString(sum[:]) || d["bytes"] != float64(size):
			t.Errorf("%s: done %v, want the whole file's sha256 %x", who, d, sum)
		case d["resumed_from"] != float64(fi.Size()) || d["transferred"] != float64(size-fi.Size()):
			t.Errorf("%s: resumed_from %v, transferred %v; want %d and %d", who, d["resumed_from"], d["transferred"], fi.Size(), size-fi.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "big.bin"+partSuffix)); !os.IsNotExist(err) {
		t.Errorf("the partial file is still there: %v", err)
	}
}
