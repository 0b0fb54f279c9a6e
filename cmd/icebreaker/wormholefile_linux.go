package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames old to new, failing with os.ErrExist if new
// exists (rename(2) alone would replace an empty directory).
func renameNoReplace(old, new string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE); err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}
