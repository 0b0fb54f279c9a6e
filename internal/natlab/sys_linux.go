//go:build linux

package natlab

import (
	"errors"
	"syscall"
)

const supported = true

// procAttr puts a started process into its own process group (so that the
// whole group can be killed) and asks the kernel to kill it if the test
// binary dies without running its cleanups.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the process group led by pid. A group that no
// longer exists is not an error.
func killGroup(pid int) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// killPID sends SIGKILL to one process; a process that is gone is not an error.
func killPID(pid int) {
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidAlive reports whether a process with this pid exists (as seen from our
// PID namespace).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
