//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs a program as cred (nil: as us) in its own process group.
func procAttr(cred *syscall.Credential, _ bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
