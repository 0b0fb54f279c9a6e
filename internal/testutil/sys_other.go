//go:build !unix

package testutil

import (
	"os"
	"syscall"
)

// procAttr returns nil: there are no process groups to set up here.
func procAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the process pid itself (no process groups here).
func killGroup(pid int) error {
	if pid <= 0 {
		return nil
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	_ = p.Kill()
	return nil
}
