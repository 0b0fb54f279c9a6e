package interop

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// Helpers of the NAT-lab tests of `icebreaker pipe`, `forward`, `send`
// and `receive` (issue 12's "Tests (real processes, real NATs)"): a lab
// with `icebreaker serve` in wan as STUN, TURN and rendezvous server, and
// pipe processes whose data the test writes in paced chunks and hashes on
// arrival, so that it can change the network between two chunks it knows
// to have arrived.

// peerLab is a NAT lab with `icebreaker serve` in wan: STUN and TURN on
// ServerIP1:3478 and the rendezvous on ServerIP1:4000, which hands both
// out with REST credentials.
type peerLab struct {
	*natlab.Lab
	bin string
	srv *natlab.Proc
	// rendezvous is the URL the peers pass as --rendezvous.
	rendezvous string
}

// newPeerLab builds a lab with opts and starts serve in wan (with more
// arguments extra).
func newPeerLab(t *testing.T, ctx context.Context, bin string, opts natlab.Options, extra ...string) *peerLab {
	t.Helper()
	lab := natlab.New(t, opts)
	args := append([]string{"serve", "--listen", natlab.ServerIP1, "--port", "3478", "--user-db", "none",
		"--allow-peer", "203.0.113.0/24", "--rest-secret", turnRESTSecret,
		"--rendezvous", natlab.ServerIP1 + ":" + mailboxPort, "--transit-relay", "off", "--rendezvous-db", "none"}, extra...)
	l := &peerLab{Lab: lab, bin: bin, rendezvous: "ws://" + natlab.ServerIP1 + ":" + mailboxPort + "/v1"}
	l.srv = lab.Start(ctx, "wan", bin, args...)
	if err := l.srv.WaitForOutput(ctx, l.rendezvous); err != nil {
		t.Fatalf("serve: %v", err)
	}
	return l
}

// counts reads wan's path counters.
func (l *peerLab) counts(t *testing.T, ctx context.Context) natlab.PathCounts {
	t.Helper()
	pc, err := l.PathCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// pipeEnd is `icebreaker pipe` running in a host of the lab. Its standard
// output goes to out, its standard error to proc's Output.
type pipeEnd struct {
	proc *testutil.Process
	in   io.WriteCloser // its standard input; nil: empty
	out  *hashSink
}

// startPipe starts `icebreaker pipe --rendezvous URL -v args...` in host;
// with stdin, its standard input is a pipe the test writes (and closes),
// else it is empty.
func (l *peerLab) startPipe(t *testing.T, ctx context.Context, host string, stdin bool, args ...string) *pipeEnd {
	t.Helper()
	cmd, err := l.Command(ctx, host, l.bin, append([]string{"pipe", "--rendezvous", l.rendezvous, "-v"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeEnd{out: newHashSink()}
	cmd.Stdout = p.out
	if stdin {
		if p.in, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	p.proc = testutil.Start(t, cmd)
	return p
}

// hashSink hashes and counts what is written to it, and tells waiters.
// It is safe for concurrent use.
type hashSink struct {
	mu   sync.Mutex
	h    hash.Hash
	n    int64
	grew chan struct{} // closed and replaced at every Write
}

func newHashSink() *hashSink { return &hashSink{h: sha256.New(), grew: make(chan struct{})} }

func (s *hashSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.Write(p)
	s.n += int64(len(p))
	close(s.grew)
	s.grew = make(chan struct{})
	return len(p), nil
}

// sum returns the count and the SHA-256 of what was written.
func (s *hashSink) sum() (int64, [sha256.Size]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum [sha256.Size]byte
	s.h.Sum(sum[:0])
	return s.n, sum
}

// waitFor waits until n bytes have been written, or ctx ends, or done
// (a process's end) is closed first.
func (s *hashSink) waitFor(ctx context.Context, n int64, done <-chan struct{}) error {
	for {
		s.mu.Lock()
		got, grew := s.n, s.grew
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-grew:
		case <-done:
			return fmt.Errorf("the process ended with %d of %d bytes", got, n)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d bytes: %w", got, n, ctx.Err())
		}
	}
}

// producer writes random chunks to w and hashes them.
type producer struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newProducer(w io.Writer) *producer { return &producer{w: w, h: sha256.New()} }

// write writes n random bytes.
func (p *producer) write(n int) error {
	b := make([]byte, n)
	rand.Read(b)
	p.h.Write(b)
	p.n += int64(n)
	_, err := p.w.Write(b)
	return err
}

func (p *producer) sum() (out [sha256.Size]byte) {
	p.h.Sum(out[:0])
	return out
}

// sendChunk writes n more bytes through src and waits until all that src
// wrote has come out of to's standard output.
func sendChunk(ctx context.Context, src *producer, n int, to *pipeEnd) error {
	if err := src.write(n); err != nil {
		return fmt.Errorf("writing %d bytes: %w", n, err)
	}
	return to.out.waitFor(ctx, src.n, to.proc.Done())
}

// finish closes a's standard input (the end of src), waits for both
// pipes to end with status 0 and checks that b got all of src, hash equal.
func finish(t *testing.T, src *producer, a, b *pipeEnd, dump func() string) {
	t.Helper()
	if err := a.in.Close(); err != nil {
		t.Fatal(err)
	}
	errA, errB := a.proc.Wait(), b.proc.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("pipe A: %v, pipe B: %v\n%s", errA, errB, dump())
	}
	if n, sum := b.out.sum(); n != src.n || sum != src.sum() {
		t.Fatalf("lanB got %d bytes (want %d), sha256 %x (want %x)\n%s", n, src.n, sum, src.sum(), dump())
	}
}

// pathOf waits (at most 10 s) for p's "Connected in" line and returns
// its path kind, or "" when none came. The line is written to standard
// error before any data, but standard error and standard output are read
// apart, so the data can be seen first.
func pathOf(ctx context.Context, p *pipeEnd) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = p.proc.WaitForOutput(ctx, "Connected in ") // on failure, connectedPath reports ""
	return connectedPath(p.proc.Output())
}

// selectedLine matches the ICE agent's -v log of a change of the selected
// pair: "selected pair changed" (an upgrade) or "back to the relayed
// backup" (a failover), with the new pair's local and remote types.
var selectedLine = regexp.MustCompile(`msg="ice: (selected pair changed|selected pair disconnected, back to the relayed backup)".* (?:pair|to)="(\w+) \S+ -> (\w+) `)

// pathChange is one change of the selected pair in a -v log.
type pathChange struct {
	what                  string
	localType, remoteType string
}

func (c pathChange) relayed() bool { return c.localType == "relay" || c.remoteType == "relay" }

func (c pathChange) String() string {
	return fmt.Sprintf("%s: local %s, remote %s", c.what, c.localType, c.remoteType)
}

// pathChanges returns the changes of the selected pair in a -v log.
func pathChanges(log string) []pathChange {
	var out []pathChange
	for _, m := range selectedLine.FindAllStringSubmatch(log, -1) {
		out = append(out, pathChange{what: m[1], localType: m[2], remoteType: m[3]})
	}
	return out
}

// lastChangeIs reports whether the latest change of the selected pair in
// log moved to a relayed pair (relayed) or to a direct one (!relayed).
func lastChangeIs(log string, relayed bool) bool {
	ch := pathChanges(log)
	return len(ch) > 0 && ch[len(ch)-1].relayed() == relayed
}

// connectedPath returns the path that pipe reports when connected: relay
// or direct ("" when not yet).
func connectedPath(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if rest, ok := strings.CutPrefix(line, "Connected in "); ok {
			if _, p, ok := strings.Cut(rest, ": "); ok {
				kind, _, _ := strings.Cut(p, " ")
				return kind
			}
		}
	}
	return ""
}
