package main

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestPipeRoundTrip: two built `icebreaker pipe` processes, one with
// --code and one with the code, exchange random bytes both ways over ICE
// and QUIC on loopback: each one's standard output is the other's input.
func TestPipeRoundTrip(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	inA, inB := make([]byte, 1<<20), make([]byte, 300_001)
	rand.Read(inA)
	rand.Read(inB)
	const code = "40-pipe-test"
	var outA, outB, errA, errB bytes.Buffer
	a := testutil.Command(ctx, bin, append([]string{"pipe", "--rendezvous", mb.URL, "--code", code}, loopbackPeer...)...)
	b := testutil.Command(ctx, bin, append([]string{"pipe", "--rendezvous", mb.URL, code}, loopbackPeer...)...)
	a.Stdin, a.Stdout, a.Stderr = bytes.NewReader(inA), &outA, &errA
	b.Stdin, b.Stdout, b.Stderr = bytes.NewReader(inB), &outB, &errB
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	errRunB := b.Run()
	errRunA := a.Wait()
	if errRunA != nil || errRunB != nil {
		t.Fatalf("pipe A: %v\n%s\npipe B: %v\n%s", errRunA, errA.String(), errRunB, errB.String())
	}
	if !bytes.Equal(outB.Bytes(), inA) || !bytes.Equal(outA.Bytes(), inB) {
		t.Fatalf("A got %d bytes (want %d), B got %d (want %d), or they differ", outA.Len(), len(inB), outB.Len(), len(inA))
	}
	for _, e := range []string{errA.String(), errB.String()} {
		if !strings.Contains(e, "pipe closed") || !strings.Contains(e, "direct") {
			t.Errorf("stderr does not report the end and the path:\n%s", e)
		}
	}
}

// TestPeerCodeOnce: pipe and forward take the code once, as --code or as
// the argument; both, or two arguments, are a usage error (exit 2) that
// says so, before anything reaches a server.
func TestPeerCodeOnce(t *testing.T) {
	for _, args := range [][]string{
		{"pipe", "--code", "1-a-b", "2-c-d"},
		{"pipe", "1-a-b", "2-c-d"},
		{"forward", "--to", "127.0.0.1:1", "--code", "1-a-b", "2-c-d"},
	} {
		var out, errb strings.Builder
		if rc := run(t.Context(), args, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "one code only") {
			t.Errorf("%q: exit %d, stderr %q", args, rc, errb.String())
		}
	}
}
