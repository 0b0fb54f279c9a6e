package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
)

// vmRSS returns the resident set size of process pid in KiB, from
// /proc/PID/status.
func vmRSS(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// runMem makes cfg.sockets idle allocations and reports the server's RSS
// growth per allocation.
func runMem(ctx context.Context, cfg config) (string, error) {
	idle, err := vmRSS(cfg.serverPID)
	if err != nil {
		return "", fmt.Errorf("server RSS: %w", err)
	}
	e, err := cfg.engine()
	if err != nil {
		return "", err
	}
	defer e.Close()
	ids := make([]int, e.Len())
	for i := range ids {
		ids[i] = i
	}
	meter := turnload.Meter{PID: cfg.serverPID}
	meter.Start()
	r := e.Run(ids, turnload.OpAllocate, cfg.inflight, time.Now().Add(time.Minute))
	meter.Stop()
	u := meter.Usage()
	if r.Done == 0 {
		return "", fmt.Errorf("no allocation succeeded (errors %s, timeouts %d)", codes(r.Codes), r.TimedOut)
	}
	// Wait for the server to settle, watching its RSS.
	peak := 0
	deadline := time.Now().Add(cfg.settle)
	for {
		rss, err := vmRSS(cfg.serverPID)
		if err != nil {
			return "", fmt.Errorf("server RSS: %w", err)
		}
		peak = max(peak, rss)
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(min(250*time.Millisecond, time.Until(deadline))):
		}
	}
	after, err := vmRSS(cfg.serverPID)
	if err != nil {
		return "", fmt.Errorf("server RSS: %w", err)
	}
	deleted, left, _ := deleteAll(e)
	s := ""
	if cfg.label != "" {
		s = "label=" + cfg.label + " "
	}
	per := float64(after-idle) / float64(r.Done)
	s += fmt.Sprintf("mode=mem allocations=%d idle_rss_kb=%d rss_kb=%d peak_rss_kb=%d delta_kb=%d kb_per_alloc=%.2f failed=%d timeouts=%d errors=%s alloc_rate=%.0f deleted=%d not_deleted=%d cpu=%.2fs server_cores=%.2f other_cores=%.2f",
		r.Done, idle, after, peak, after-idle, per, r.Failed, r.TimedOut, codes(r.Codes), r.Rate(), deleted, left, u.Self, u.Cores(u.Server), u.Cores(u.Other))
	if r.Done < len(ids) {
		return s, errors.New(s + ": not every allocation succeeded")
	}
	return s, nil
}
