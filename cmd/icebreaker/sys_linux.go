package main

import (
	"fmt"
	"os"
	"path/filepath"

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

// lockPart takes an exclusive lock on a partial file being received, so
// that two receivers of the same name cannot write it at once; the lock
// goes with the file's close.
func lockPart(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("%s is being received by another process (%w)", filepath.Base(f.Name()), err)
	}
	return nil
}
