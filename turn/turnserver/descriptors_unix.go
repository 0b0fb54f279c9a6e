//go:build unix

package turnserver

import "syscall"

// DescriptorBudget returns the open-file limit of the process (Go raises
// the soft RLIMIT_NOFILE to the hard limit at start) less reserve, but at
// least half the limit (a reserve that large means the listeners' own
// bounds are set past the limit); and 0 (no budget) when the limit cannot
// be read or is unlimited.
func DescriptorBudget(reserve int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<40 {
		return 0
	}
	return max(int(lim.Cur)-reserve, int(lim.Cur)/2)
}
