package interop

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
)

// TestSendFileWithLoss: issue 12's loss test. natA drops 5% of the packets
// it forwards, both ways, at random (natlab.Lab.Loss), from before the
// peers start: the rendezvous, the ICE checks and QUIC all see it. An
// 8 MB file from lanA to lanB arrives whole, the hash equal.
func TestSendFileWithLoss(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	lab := newPeerLab(t, ctx, bin, natlab.Options{A: natlab.EIM, B: natlab.EIM})
	if err := lab.Loss("A", 5); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	file := filepath.Join(t.TempDir(), "lossy.bin")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	const code = "6-natlab-loss"
	dst := t.TempDir()
	common := []string{"--rendezvous", lab.rendezvous, "--json", "-v"}
	send := lab.Start(ctx, "lanA", bin, append([]string{"send", file, "--code", code}, common...)...)
	recv := lab.Start(ctx, "lanB", bin, append([]string{"receive", "--accept-file", "-o", dst, code}, common...)...)
	errS, errR := send.Wait(), recv.Wait()
	dump := fmt.Sprintf("send (lanA):\n%s\nreceive (lanB):\n%s", send.Output(), recv.Output())
	if errS != nil || errR != nil {
		t.Fatalf("send: %v, receive: %v\n%s", errS, errR, dump)
	}
	got, err := os.ReadFile(filepath.Join(dst, "lossy.bin"))
	if err != nil || sha256.Sum256(got) != sum {
		t.Fatalf("received: %v, %d bytes (want %d, sha256 equal)\n%s", err, len(got), len(data), dump)
	}
	for who, out := range map[string]string{"send": send.Output(), "receive": recv.Output()} {
		ev := checkDone(t, who, out, sum, int64(len(data)), dump)
		t.Logf("%s: %s path at 5%% loss on natA, %d bytes in %.2f s", who, ev.Path, ev.Bytes, ev.Seconds)
	}
}

// TestRendezvousFaultsThroughNATs: issue 12's faults, in one lab with two
// EIM NATs and `icebreaker serve` (STUN, TURN, rendezvous) in wan.
//
//   - A wrong code: `icebreaker send` in lanA and `icebreaker receive` in
//     lanB with a code that differs in one word: both fail at once (one
//     try, no retry) and say why.
//   - The server goes away after the peers connected: `icebreaker pipe`
//     between lanA and lanB; once both have connected and a first chunk
//     has arrived, serve is killed (SIGKILL: its sockets close with it);
//     the rest of the data still arrives, hash equal, over the direct
//     path that needs no server, and both pipes end with status 0, only
//     warning that the mailbox could not be closed.
func TestRendezvousFaultsThroughNATs(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	lab := newPeerLab(t, ctx, bin, natlab.Options{A: natlab.EIM, B: natlab.EIM})

	file := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(file, []byte("not for the wrong code\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	send := lab.Start(ctx, "lanA", bin, "send", file, "--code", "7-natlab-adviser", "--rendezvous", lab.rendezvous)
	recv := lab.Start(ctx, "lanB", bin, "receive", "--accept-file", "-o", dst, "7-natlab-advisor", "--rendezvous", lab.rendezvous)
	errS, errR := send.Wait(), recv.Wait()
	for who, r := range map[string]struct {
		err error
		out string
	}{"send": {errS, send.Output()}, "receive": {errR, recv.Output()}} {
		if r.err == nil || strings.Count(strings.ToLower(r.out), "key confirmation failed") != 1 {
			t.Errorf("%s with a wrong code: %v, want one clear failure\n%s", who, r.err, r.out)
		}
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("the receiver with a wrong code wrote %d files", len(entries))
	}

	const code = "8-natlab-gone"
	a := lab.startPipe(t, ctx, "lanA", true, "--code", code)
	b := lab.startPipe(t, ctx, "lanB", false, code)
	dump := func() string {
		return fmt.Sprintf("pipe (lanA):\n%s\npipe (lanB):\n%s", a.proc.Output(), b.proc.Output())
	}
	src := newProducer(a.in)
	const chunk = 64 << 10
	if err := sendChunk(ctx, src, chunk, b); err != nil {
		t.Fatalf("first chunk: %v\n%s", err, dump())
	}
	for _, p := range []*pipeEnd{a, b} {
		if pathOf(ctx, p) != "direct" {
			t.Fatalf("not connected directly\n%s", dump())
		}
	}
	lab.srv.Kill()
	<-lab.srv.Done()
	for src.n < 2<<20 {
		if err := sendChunk(ctx, src, chunk, b); err != nil {
			t.Fatalf("after the server went away: %v\n%s", err, dump())
		}
	}
	finish(t, src, a, b, dump)
	for _, p := range []*pipeEnd{a, b} {
		if !strings.Contains(p.proc.Output(), "warning: done, but the rendezvous did not close the mailbox") {
			t.Errorf("no warning about the mailbox left open\n%s", dump())
		}
	}
}
