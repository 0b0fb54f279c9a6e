//go:build linux

package natlab

import (
	"errors"
	"syscall"
)

const supported = true

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
