//go:build !linux

package main

import "os"

// freeSpace does not know the free space outside Linux.
func freeSpace(string) (uint64, bool) { return 0, false }

// hasTermios takes a character device for a terminal outside Linux.
func hasTermios(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// lockPart does not lock outside Linux.
func lockPart(*os.File) error { return nil }
