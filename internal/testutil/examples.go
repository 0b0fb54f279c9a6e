package testutil

import (
	"os"
	"runtime"
	"testing"
)

// CheckExamples runs each Example function with its output discarded and
// fails t unless the goroutines they started have all exited afterwards:
// an example is code people copy, so it must stop what it starts. It
// replaces os.Stdout while it runs, so its test must not be parallel.
func CheckExamples(t testing.TB, examples ...func()) {
	t.Helper()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	stdout := os.Stdout
	defer func() { os.Stdout = stdout }()
	before := runtime.NumGoroutine()
	os.Stdout = devnull
	for _, ex := range examples {
		ex()
	}
	os.Stdout = stdout
	CheckGoroutines(t, before)
}
