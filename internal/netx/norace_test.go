//go:build !race

package netx

const raceEnabled = false
