//go:build unix

package mailbox

import "syscall"

// setRcvBuf sets the socket's receive buffer (SO_RCVBUF) to n bytes.
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
