//go:build !race

package ice

const raceEnabled = false
