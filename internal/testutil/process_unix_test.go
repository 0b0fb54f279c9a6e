//go:build unix

package testutil

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcessOutputAndKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The shell starts a child in the background; killing the group must
	// take both.
	var p *Process
	t.Run("run", func(t *testing.T) {
		p = Start(t, Command(ctx, "sh", "-c", "sleep 60 & echo child $!; echo ready; wait"))
		if err := p.WaitForOutput(ctx, "ready"); err != nil {
			t.Fatal(err)
		}
		if p.Exited() {
			t.Fatal("process exited early")
		}
	})
	// The subtest's cleanup has killed and reaped the process.
	if !p.Exited() {
		t.Fatal("process still running after its test's cleanup")
	}
	var child int
	if _, err := fmt.Sscanf(p.Output(), "child %d", &child); err != nil {
		t.Fatalf("parse %q: %v", p.Output(), err)
	}
	// The child was in the killed group. Once its parent (the shell) is
	// gone, init reaps it whenever it gets to it, so a zombie counts as
	// dead. Poll, bounded by ctx: the kill is asynchronous.
	for !deadOrZombie(child) {
		select {
		case <-ctx.Done():
			t.Fatalf("child %d of the killed group is still running", child)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// deadOrZombie reports whether pid no longer runs: it is gone, or (where
// /proc tells) it is a zombie waiting to be reaped.
func deadOrZombie(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) && runtime.GOOS == "linux"
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func TestProcessExitsBeforeOutput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := Start(t, Command(ctx, "sh", "-c", "echo something else; exit 3"))
	err := p.WaitForOutput(ctx, "ready")
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "something else") {
		t.Fatalf("WaitForOutput = %v, want an error saying it exited, with the output", err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
}

func TestProcessWaitForTimeout(t *testing.T) {
	t.Parallel()
	p := Start(t, Command(context.Background(), "sleep", "60"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitForOutput(ctx, "never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitForOutput = %v, want context.Canceled", err)
	}
}
