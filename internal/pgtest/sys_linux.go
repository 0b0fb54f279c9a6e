//go:build linux

package pgtest

import "syscall"

// procAttr runs a program as cred (nil: as us) in its own process group;
// the server is also killed if the test binary dies first.
func procAttr(cred *syscall.Credential, server bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if server {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}
