package natlab

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// Proc is a process started in a lab namespace by [Lab.Start]: a
// testutil.Process (output, Wait, Kill, WaitForOutput...) that may also
// have a standard input pipe. The test's cleanup kills its process group
// and reaps it before the lab's namespaces are deleted.
type Proc struct {
	*testutil.Process
	stdin io.WriteCloser // nil unless started by StartWithStdin
}

// Start starts binary with args inside the namespace of host ("wan", "natA",
// "natB", "lanA" or "lanB") through "ip netns exec", in its own process group.
// Standard output and standard error are collected together (see
// [testutil.Process.Output]). Cancelling ctx kills the process group. Start
// fails the test (so it must be called from the test goroutine) if the
// process cannot be started.
func (l *Lab) Start(ctx context.Context, host, binary string, args ...string) *Proc {
	l.t.Helper()
	return l.start(ctx, false, host, binary, args)
}

// StartWithStdin is Start with the process's standard input connected to a
// pipe that [Proc.Stdin] returns, so a test can feed it lines (an ICE
// token, say). Standard input is closed when the process is reaped.
func (l *Lab) StartWithStdin(ctx context.Context, host, binary string, args ...string) *Proc {
	l.t.Helper()
	return l.start(ctx, true, host, binary, args)
}

func (l *Lab) start(ctx context.Context, withStdin bool, host, binary string, args []string) *Proc {
	l.t.Helper()
	cmd, err := l.command(ctx, host, binary, args)
	if err != nil {
		l.t.Fatal(err)
	}
	p := &Proc{}
	if withStdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			l.t.Fatalf("natlab: stdin of %s on %s: %v", binary, host, err)
		}
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.t.Fatalf("natlab: Start(%s on %s) after the lab was cleaned up", binary, host)
	}
	// Its cleanup, registered after the lab's, runs before it.
	p.Process = testutil.Start(l.t, cmd)
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// Run runs binary with args inside the namespace of host until it exits and
// returns its combined standard output and standard error. Cancelling ctx
// kills its process group. A non-nil error wraps the *exec.ExitError (or start
// error).
func (l *Lab) Run(ctx context.Context, host, binary string, args ...string) ([]byte, error) {
	cmd, err := l.command(ctx, host, binary, args)
	if err != nil {
		return nil, err
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		return b, fmt.Errorf("natlab: %s: %s: %w", host, strings.Join(append([]string{binary}, args...), " "), err)
	}
	return b, nil
}

// Command returns the command that Start would run, "ip netns exec NS
// binary args...", for a test that wires its standard streams itself (the
// data of a pipe, say) and hands it to testutil.Start. Unlike Start, the
// lab does not show its output when the test fails.
func (l *Lab) Command(ctx context.Context, host, binary string, args ...string) (*exec.Cmd, error) {
	return l.command(ctx, host, binary, args)
}

// command prepares "ip netns exec NS binary args...".
func (l *Lab) command(ctx context.Context, host, binary string, args []string) (*exec.Cmd, error) {
	ns := l.NS(host)
	if ns == "" {
		return nil, fmt.Errorf("natlab: host %s does not exist (its side is in mode %s)", host, None)
	}
	return testutil.Command(ctx, toolPath("ip"), append([]string{"netns", "exec", ns, binary}, args...)...), nil
}

// Stdin returns the write end of the process's standard input, or nil when
// it was not started by [Lab.StartWithStdin].
func (p *Proc) Stdin() io.WriteCloser { return p.stdin }
