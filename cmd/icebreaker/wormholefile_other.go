//go:build !linux

package main

import (
	"fmt"
	"os"
)

// renameNoReplace renames old to new, failing with os.ErrExist if new
// exists (checked first: a race remains where renameat2 is missing).
func renameNoReplace(old, new string) error {
	if _, err := os.Lstat(new); err == nil {
		return fmt.Errorf("rename %s %s: %w", old, new, os.ErrExist)
	}
	return os.Rename(old, new)
}
