//go:build race

package testutil

// RaceEnabled reports whether the race detector is on. It makes sync.Pool
// drop some buffers on purpose, so allocation counts (testing.AllocsPerRun)
// do not hold under it.
const RaceEnabled = true
