package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
)

// runRate allocates on the whole pool, deletes, and again, until
// cfg.duration of allocating has been measured.
func runRate(ctx context.Context, cfg config) (string, error) {
	e, err := cfg.engine()
	if err != nil {
		return "", err
	}
	defer e.Close()
	ids := make([]int, e.Len())
	for i := range ids {
		ids[i] = i
	}
	var (
		measured            time.Duration
		done, failed, lost  int
		challenges, retrans int
		latency             time.Duration
		meter               = turnload.Meter{PID: cfg.serverPID}
		cycles              int
		allCodes            = map[int]int{}
	)
	wallLimit := time.Now().Add(4*cfg.duration + 30*time.Second)
	for measured < cfg.duration && cycles < maxCycles {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if time.Now().After(wallLimit) {
			return "", errors.New("out of time: the server is too slow to finish the cycles")
		}
		cycles++
		if cycles > 1 {
			// Fresh 5-tuples: a new client IP per cycle.
			ip, err := cycleIP(cfg.clientIP, cycles-1)
			if err != nil {
				return "", err
			}
			if err := e.Reopen(ip); err != nil {
				return "", err
			}
		}
		meter.Start()
		r := e.Run(ids, turnload.OpAllocate, cfg.inflight, time.Now().Add(cfg.duration-measured))
		meter.Stop()
		measured += r.Last.Sub(r.Start)
		done += r.Done
		failed += r.Failed
		lost += r.TimedOut
		challenges += r.Challenges
		retrans += r.Retransmits
		latency += r.Latency
		for c, n := range r.Codes {
			allCodes[c] += n
		}
		if cfg.verbose != nil {
			fmt.Fprintf(cfg.verbose, "cycle %d: %d allocated in %v (%.0f/s), failed %d %s, timeouts %d, retransmits %d\n",
				cycles, r.Done, r.Last.Sub(r.Start).Round(time.Millisecond), r.Rate(), r.Failed, codes(r.Codes), r.TimedOut, r.Retransmits)
		}
		if r.Done == 0 {
			return "", fmt.Errorf("no allocation succeeded (errors %s, timeouts %d)", codes(r.Codes), r.TimedOut)
		}
		t0 := time.Now()
		deleted, _, err := deleteAll(e)
		if cfg.verbose != nil {
			fmt.Fprintf(cfg.verbose, "cycle %d: %d deleted in %v\n", cycles, deleted, time.Since(t0).Round(time.Millisecond))
		}
		if err != nil {
			return "", err
		}
	}
	rate := float64(done) / measured.Seconds()
	lat := time.Duration(0)
	if done > 0 {
		lat = latency / time.Duration(done)
	}
	s := ""
	if cfg.label != "" {
		s = "label=" + cfg.label + " "
	}
	u := meter.Usage()
	s += fmt.Sprintf("mode=rate rate=%.0f alloc/s allocations=%d seconds=%.3f cycles=%d pool=%d inflight=%d failed=%d timeouts=%d errors=%s challenges=%d retransmits=%d mean_latency=%v stray=%d send_errors=%d cpu=%.2fs gen_cores=%.2f server_cores=%.2f other_cores=%.2f",
		rate, done, measured.Seconds(), cycles, e.Len(), cfg.inflight, failed, lost, codes(allCodes), challenges, retrans,
		lat.Round(time.Microsecond), e.Stray, e.SendErrors, u.Self, u.Cores(u.Self), u.Cores(u.Server), u.Cores(u.Other))
	return s, nil
}

// cycleIP returns the client IP of cycle k: base plus k (127.0.0.2,
// 127.0.0.3, ...). IPv6 has only ::1 on loopback, so it stays; the new
// sockets then get new ports from the kernel.
func cycleIP(base netip.Addr, k int) (netip.Addr, error) {
	if !base.Is4() {
		return base, nil
	}
	a := base
	for range k {
		a = a.Next()
	}
	if !a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("ran out of loopback addresses after %v", base)
	}
	return a, nil
}
