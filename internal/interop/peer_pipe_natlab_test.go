//go:build unix

package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
)

// TestPipeRoundTripThroughNATs: `icebreaker pipe` between lanA and lanB
// behind two symmetric NATs (random×random: only the TURN relay in wan
// works) carries random bytes both ways at once: each side's standard
// input comes out whole at the other's standard output.
func TestPipeRoundTripThroughNATs(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	lab := newPeerLab(t, ctx, bin, natlab.Options{A: natlab.Random, B: natlab.Random})
	const code = "9-natlab-pipe"
	a := lab.startPipe(t, ctx, "lanA", true, "--code", code)
	b := lab.startPipe(t, ctx, "lanB", true, code)
	dump := func() string {
		return fmt.Sprintf("pipe (lanA):\n%s\npipe (lanB):\n%s", a.proc.Output(), b.proc.Output())
	}
	srcA, srcB := newProducer(a.in), newProducer(b.in)
	errs := make(chan error, 2)
	for _, w := range []struct {
		src *producer
		n   int
	}{{srcA, 1 << 20}, {srcB, 700_001}} {
		go func() { // ends when the process does, at the latest
			err := w.src.write(w.n)
			if err == nil {
				err = w.src.w.(interface{ Close() error }).Close()
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("writing: %v\n%s", err, dump())
		}
	}
	errA, errB := a.proc.Wait(), b.proc.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("pipe A: %v, pipe B: %v\n%s", errA, errB, dump())
	}
	for _, c := range []struct {
		name string
		src  *producer
		dst  *pipeEnd
	}{{"lanA to lanB", srcA, b}, {"lanB to lanA", srcB, a}} {
		if n, sum := c.dst.out.sum(); n != c.src.n || sum != c.src.sum() {
			t.Errorf("%s: %d bytes (want %d), sha256 %x (want %x)", c.name, n, c.src.n, sum, c.src.sum())
		}
	}
	for _, p := range []*pipeEnd{a, b} {
		if pathOf(ctx, p) != "relay" {
			t.Errorf("not on the relay, which random×random needs\n%s", dump())
		}
	}
}

// TestForwardThroughNATs: an HTTP server (python3 -m http.server) bound
// to the loopback address of lanB, reached from lanA with curl through
// `icebreaker forward --listen` in lanA and `icebreaker forward --to` in
// lanB, across two EIM NATs. The side with --to decides where the
// connections go: the server sees them come from lanB's own loopback,
// through its forwarder; lanA has no route to it otherwise.
func TestForwardThroughNATs(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	ctx := testContext(t)
	lab := newPeerLab(t, ctx, bin, natlab.Options{A: natlab.EIM, B: natlab.EIM})
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "page.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	const httpPort, listenPort = 8000, 8080
	web := lab.Start(ctx, "lanB", "/usr/bin/python3", "-u", "-m", "http.server", strconv.Itoa(httpPort),
		"--bind", "127.0.0.1", "--directory", dir)
	if err := web.WaitForOutput(ctx, "Serving HTTP"); err != nil {
		t.Fatal(err)
	}
	const code = "10-natlab-forward"
	listen := lab.Start(ctx, "lanA", bin, "forward", "--rendezvous", lab.rendezvous, "--code", code,
		"--listen", "127.0.0.1:"+strconv.Itoa(listenPort))
	to := lab.Start(ctx, "lanB", bin, "forward", "--rendezvous", lab.rendezvous, "--to", "127.0.0.1:"+strconv.Itoa(httpPort), code)
	dump := func() string {
		return fmt.Sprintf("forward --listen (lanA):\n%s\nforward --to (lanB):\n%s\nhttp.server (lanB):\n%s",
			listen.Output(), to.Output(), web.Output())
	}
	if err := listen.WaitForOutput(ctx, "forwarding connections to"); err != nil {
		t.Fatalf("%v\n%s", err, dump())
	}
	out := filepath.Join(t.TempDir(), "got.bin")
	url := fmt.Sprintf("http://127.0.0.1:%d/page.bin", listenPort)
	if res, err := lab.Run(ctx, "lanA", "curl", "-sS", "--fail", "--max-time", "20", "-o", out, url); err != nil {
		t.Fatalf("curl %s in lanA: %v\n%s\n%s", url, err, res, dump())
	}
	got, err := os.ReadFile(out)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("curl got %d bytes (want %d, sha256 equal): %v\n%s", len(got), len(data), err, dump())
	}
	if err := web.WaitForOutput(ctx, `"GET /page.bin HTTP/1.1" 200`); err != nil {
		t.Fatalf("the server did not log the request: %v\n%s", err, dump())
	}
	for _, line := range strings.Split(web.Output(), "\n") {
		if strings.Contains(line, "GET ") && !strings.HasPrefix(line, "127.0.0.1 ") {
			t.Errorf("a request did not come from lanB's forwarder: %q", line)
		}
	}
	if !bytes.Contains([]byte(to.Output()), []byte("forwarding the peer's connections to 127.0.0.1:"+strconv.Itoa(httpPort))) {
		t.Errorf("the --to side does not say where it forwards\n%s", dump())
	}
	// The end: an interrupt ends the listening side, and the other side
	// then ends by itself, both with status 0.
	if err := syscall.Kill(listen.PID(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if errL, errT := listen.Wait(), to.Wait(); errL != nil || errT != nil {
		t.Fatalf("forward --listen: %v, forward --to: %v\n%s", errL, errT, dump())
	}
}
