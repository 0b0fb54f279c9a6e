//go:build race

package ice

// raceEnabled: the race detector makes sync.Pool drop some buffers on
// purpose, so allocation counts do not hold.
const raceEnabled = true
