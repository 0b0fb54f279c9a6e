//go:build !linux

package main

import "time"

func sleep(d time.Duration) { time.Sleep(d) }

// gsoSupported: UDP GSO (UDP_SEGMENT) is Linux only.
const gsoSupported = false

func gsoControl(size int) []byte { return nil }
