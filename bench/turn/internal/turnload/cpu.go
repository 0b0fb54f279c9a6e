package turnload

import (
	"os"
	"runtime/pprof"
	"time"
)

// Meter measures CPU use over intervals: this process's, a server
// process's and the whole host's. Usage sums every interval between Start
// and Stop. The zero value measures nothing about the server; set PID.
type Meter struct {
	PID int // server process, or 0

	running             bool
	t0                  time.Time
	self0, srv0, host0  float64
	wall, self, srv, hs float64
}

// Start begins an interval.
func (m *Meter) Start() {
	m.running = true
	m.t0 = time.Now()
	m.self0, m.srv0, m.host0 = selfCPU(), procCPU(m.PID), hostCPU()
}

// Stop ends the interval begun by Start and adds it to the totals.
func (m *Meter) Stop() {
	if !m.running {
		return
	}
	m.running = false
	m.wall += time.Since(m.t0).Seconds()
	m.self += selfCPU() - m.self0
	m.srv += procCPU(m.PID) - m.srv0
	m.hs += hostCPU() - m.host0
}

// Usage is CPU time over a Meter's intervals.
type Usage struct {
	Seconds float64 // wall time
	Self    float64 // CPU seconds of this process
	Server  float64 // CPU seconds of the server process
	// Other is CPU seconds the host spent busy (or lost to the hypervisor)
	// outside this process and the server: other processes, and interrupt
	// work charged to none. Near 0 on an idle machine.
	Other float64
}

// Usage returns the totals so far.
func (m *Meter) Usage() Usage {
	return Usage{Seconds: m.wall, Self: m.self, Server: m.srv, Other: max(0, m.hs-m.self-m.srv)}
}

// Cores returns CPU seconds per wall second.
func (u Usage) Cores(cpu float64) float64 {
	if u.Seconds <= 0 {
		return 0
	}
	return cpu / u.Seconds
}

// StartCPUProfile writes a CPU profile (runtime/pprof) of this process to
// path, if path is not empty, until the returned stop is called. stop is
// never nil.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
