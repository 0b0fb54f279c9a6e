package natlab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Proc is a process started in a lab namespace by [Lab.Start]. The lab kills
// and reaps it in its cleanup.
type Proc struct {
	name  string // for messages: "lanA: binary args..."
	pid   int
	out   syncBuffer
	stdin io.WriteCloser // nil unless started by StartWithStdin

	done chan struct{} // closed once the process has been reaped
	err  error         // result of cmd.Wait, valid after done
}

// Start starts binary with args inside the namespace of host ("wan", "natA",
// "natB", "lanA" or "lanB") through "ip netns exec", in its own process group.
// Standard output and standard error are collected together (see
// [Proc.Output]). Cancelling ctx kills the process group. The lab's cleanup
// kills the process group and reaps the process; Start fails the test (so it
// must be called from the test goroutine) if the process cannot be started.
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
	p := &Proc{name: host + ": " + strings.Join(append([]string{binary}, args...), " "), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if withStdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			l.t.Fatalf("natlab: stdin of %s: %v", p.name, err)
		}
	}

	// Holding the lock across Start makes sure a concurrent cleanup either
	// sees this process or has already refused it.
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.t.Fatalf("natlab: Start(%s) after the lab was cleaned up", p.name)
	}
	if err := cmd.Start(); err != nil {
		l.mu.Unlock()
		l.t.Fatalf("natlab: start %s: %v", p.name, err)
	}
	p.pid = cmd.Process.Pid
	l.procs = append(l.procs, p)
	l.mu.Unlock()

	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
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
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	b := out.Bytes()
	if err != nil {
		return b, fmt.Errorf("natlab: %s: %s: %w", host, strings.Join(append([]string{binary}, args...), " "), err)
	}
	return b, nil
}

// command prepares "ip netns exec NS binary args...".
func (l *Lab) command(ctx context.Context, host, binary string, args []string) (*exec.Cmd, error) {
	ns := l.NS(host)
	if ns == "" {
		return nil, fmt.Errorf("natlab: host %s does not exist (its side is in mode %s)", host, None)
	}
	cmd := exec.CommandContext(ctx, toolPath("ip"), append([]string{"netns", "exec", ns, binary}, args...)...)
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	// If a grandchild keeps the output pipe open, do not block Wait forever.
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// PID returns the process ID. "ip netns exec" execs the binary, so this is the
// binary's own PID (and its process group ID).
func (p *Proc) PID() int { return p.pid }

// Stdin returns the write end of the process's standard input, or nil when
// it was not started by [Lab.StartWithStdin].
func (p *Proc) Stdin() io.WriteCloser { return p.stdin }

// Output returns everything the process has written to standard output and
// standard error so far.
func (p *Proc) Output() string { return p.out.String() }

// Wait waits for the process to exit and returns the result of its
// exec.Cmd.Wait. It may be called any number of times, from any goroutine.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Kill sends SIGKILL to the process group of the process. It does not wait;
// call Wait for that.
func (p *Proc) Kill() {
	_ = killGroup(p.pid)
}

// Exited reports whether the process has exited and been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitForOutput waits until the output of the process contains substr. It
// fails when ctx is done or when the process exits without having written
// substr; the error includes the output.
func (p *Proc) WaitForOutput(ctx context.Context, substr string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.Output(), substr) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return nil
			}
			return fmt.Errorf("natlab: %s exited (%v) before writing %q; output:\n%s", p.name, p.err, substr, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("natlab: waiting for %q from %s: %w; output:\n%s", substr, p.name, context.Cause(ctx), p.Output())
		case <-tick.C:
		}
	}
}

// syncBuffer is a bytes.Buffer that may be written and read concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
