package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// freeSpace returns the bytes available to this user on dir's file system.
func freeSpace(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}

// hasTermios reports whether f is a terminal (it has terminal attributes;
// /dev/null, a character device too, has none).
func hasTermios(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
