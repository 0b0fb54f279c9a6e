package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// procSample is what /proc says about the server at one moment.
type procSample struct {
	at      time.Time
	pid     int
	cpu     float64 // user+system seconds
	rssKB   int
	fds     int
	threads int
}

// sample reads the server's CPU time, RSS and open descriptors; with pid
// 0 it is empty.
func sample(pid int) procSample {
	s := procSample{at: time.Now(), pid: pid}
	if pid <= 0 {
		return s
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := bytes.Fields(b[i+1:]); len(f) > 12 {
				u, _ := strconv.ParseFloat(string(f[11]), 64)
				k, _ := strconv.ParseFloat(string(f[12]), 64)
				s.cpu = (u + k) / 100 // USER_HZ
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range bytes.Lines(b) {
			if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
				s.rssKB, _ = strconv.Atoi(string(bytes.Fields(v)[0]))
			}
			if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
				s.threads, _ = strconv.Atoi(string(bytes.Fields(v)[0]))
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	return s
}

func (s procSample) String() string {
	if s.pid <= 0 {
		return "(no -pid)"
	}
	return fmt.Sprintf("RSS %d KB, %d descriptors", s.rssKB, s.fds)
}

// delta describes the CPU the server used from before to s, with s's RSS
// and descriptors.
func (s procSample) delta(before procSample) string {
	if s.pid <= 0 {
		return "(no -pid)"
	}
	wall := s.at.Sub(before.at).Seconds()
	return fmt.Sprintf("CPU %.2f cores over %.1fs, %s", (s.cpu-before.cpu)/wall, wall, s)
}
