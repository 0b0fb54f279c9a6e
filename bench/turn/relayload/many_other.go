//go:build !linux

package main

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// countRun reads every socket of socks until stop is set, and counts this
// run's packets: a goroutine per socket here.
func countRun(socks []*net.UDPConn, token uint64, stop *atomic.Bool) counts {
	var mu sync.Mutex
	var total counts
	var wg sync.WaitGroup
	for i, s := range socks {
		wg.Go(func() {
			var c counts
			buf := make([]byte, 2048)
			for {
				s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				k, err := s.Read(buf)
				if err != nil {
					if stop.Load() {
						break
					}
					continue
				}
				c.tally(i, buf[:k], token)
			}
			s.SetReadDeadline(time.Time{})
			mu.Lock()
			total.measured += c.measured
			total.all += c.all
			total.stray += c.stray
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}
