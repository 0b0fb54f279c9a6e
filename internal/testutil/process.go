package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitDelay bounds how long Wait keeps reading a process's output pipes after
// the process has exited, in case a child it left behind still holds them.
const waitDelay = 2 * time.Second

// Command returns an exec.Cmd for name and args that runs in its own process
// group (and, on Linux, is killed if the test binary dies first). Cancelling
// ctx kills the whole group, so a program that forks cannot outlive it. The
// caller runs it (Run, Output, CombinedOutput) or hands it to Start.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// Process is a long-running program (a server, a peer) started by Start for
// one test. The test's cleanup kills its process group by PID and reaps it.
// Its methods are safe for concurrent use.
type Process struct {
	name string // for messages: the command line
	pid  int
	out  outBuffer

	done chan struct{} // closed once the process has been reaped
	err  error         // result of cmd.Wait, valid after done
}

// Start starts cmd, which should come from Command, collecting its standard
// output and standard error together (unless the caller set them), and
// registers a cleanup that kills its process group and waits for it. Start
// fails the test if the program cannot be started, so it must be called from
// the test goroutine.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = procAttr()
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = waitDelay
	}
	p := &Process{name: strings.Join(cmd.Args, " "), done: make(chan struct{})}
	p.out.changed = make(chan struct{})
	if cmd.Stdout == nil {
		cmd.Stdout = &p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testutil: start %s: %v", p.name, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		<-p.done
	})
	return p
}

// PID returns the process ID, which is also its process group ID.
func (p *Process) PID() int { return p.pid }

// String returns the command line.
func (p *Process) String() string { return p.name }

// Output returns what the process has written so far to the output Start
// collects.
func (p *Process) Output() string { return p.out.String() }

// Kill sends SIGKILL to the process group. It does not wait; Wait does.
func (p *Process) Kill() { _ = killGroup(p.pid) }

// Wait waits until the process has exited and been reaped, and returns the
// result of exec.Cmd.Wait. Any number of goroutines may call it.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitForOutput waits until the collected output contains substr. It
// returns an error, which includes the output so far, when ctx is done first
// or when the process exits without having written substr.
func (p *Process) WaitForOutput(ctx context.Context, substr string) error {
	return p.WaitFor(ctx, fmt.Sprintf("%q", substr), func(out string) bool {
		return strings.Contains(out, substr)
	})
}

// WaitFor waits until ready, called with the whole output each time it
// grows, returns true. what describes the wait in the error, which includes
// the output so far, returned when ctx is done first or when the process
// exits before ready holds.
func (p *Process) WaitFor(ctx context.Context, what string, ready func(out string) bool) error {
	for {
		out, changed := p.out.snapshot()
		if ready(out) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if out := p.Output(); ready(out) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before writing %s; output:\n%s", p.name, p.err, what, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s from %s: %w; output:\n%s", what, p.name, context.Cause(ctx), p.Output())
		}
	}
}

// outBuffer is a bytes.Buffer that may be written and read concurrently and
// tells readers when it grows.
type outBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every Write
}

func (o *outBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return n, err
}

func (o *outBuffer) String() string {
	s, _ := o.snapshot()
	return s
}

// snapshot returns the contents and a channel closed at the next Write.
func (o *outBuffer) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String(), o.changed
}
