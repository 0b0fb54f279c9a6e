//go:build !race

package turnclient

const raceEnabled = false
