//go:build !linux

package natlab

import "syscall"

// The lab needs Linux network namespaces; on other systems New skips the
// test. These stubs only keep the package compiling.

const supported = false

func procAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) error { return nil }

func killPID(int) {}

func pidAlive(int) bool { return true }
