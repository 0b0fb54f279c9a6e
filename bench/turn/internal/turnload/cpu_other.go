//go:build !linux

package turnload

// CPU times are not measured on this system.
func selfCPU() float64        { return 0 }
func procCPU(pid int) float64 { return 0 }
func hostCPU() float64        { return 0 }
