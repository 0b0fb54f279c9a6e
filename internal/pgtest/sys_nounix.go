//go:build !unix

package pgtest

import (
	"os"
	"syscall"
)

// clusterUser: outside Unix there is no root to step down from (and no
// Debian PostgreSQL, so Start reports ErrUnavailable before this matters).
func clusterUser(string) (func(server bool) *syscall.SysProcAttr, error) {
	return func(bool) *syscall.SysProcAttr { return nil }, nil
}

// interrupt stops postgres; without signals that is a kill.
func interrupt(p *os.Process) { _ = p.Kill() }

// killGroup kills postgres.
func killGroup(p *os.Process) { _ = p.Kill() }
