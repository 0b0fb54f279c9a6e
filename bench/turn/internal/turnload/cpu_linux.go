package turnload

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// architecture Go supports.
const clockTick = 100

// selfCPU returns this process's user and system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// procCPU returns process pid's user and system CPU seconds, or 0.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces; fields count from
	// after its closing parenthesis: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(string(f[11]), 64)
	s, _ := strconv.ParseFloat(string(f[12]), 64)
	return (u + s) / clockTick
}

// hostCPU returns the CPU seconds all CPUs spent busy: user, nice, system,
// irq, softirq and steal in /proc/stat's cpu line.
func hostCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	var sum float64
	for _, k := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseFloat(string(f[k]), 64)
		sum += v
	}
	return sum / clockTick
}
