package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestReceiveDiskFull: a receiver whose -o directory (a 1 MiB tmpfs) has
// less room than the offered file refuses it before any data moves, and
// both sides say why.
func TestReceiveDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs takes root")
	}
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	src, dst := t.TempDir(), t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "icebreaker-test", dst).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dst, syscall.MNT_DETACH) })
	randomFile(t, src, "big.bin", 2<<20)
	send := testutil.Start(t, testutil.Command(ctx, bin, sendArgs(mb.URL, filepath.Join(src, "big.bin"))...))
	code := jsonCode(t, ctx, send)
	out, err := testutil.Command(ctx, bin, receiveArgs(mb.URL, "--accept-file", "-o", dst, code)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not enough space in "+dst) {
		t.Errorf("receive: %v, want a refusal for the space:\n%s", err, out)
	}
	if err := send.Wait(); err == nil || !strings.Contains(send.Output(), "the receiver declined: not enough space") {
		t.Errorf("send: %v, want the receiver's reason:\n%s", err, send.Output())
	}
	if ents, _ := os.ReadDir(dst); len(ents) > 0 {
		t.Errorf("the refusal left %v", ents)
	}
}
