//go:build !linux

package udpio

import (
	"errors"
	"net"
	"syscall"
)

const (
	reusePortSupported = false
	// DontFragmentSupported reports whether SetDontFragment works here.
	DontFragmentSupported = false
)

// ControlReusePort would set SO_REUSEPORT; it is not supported here.
func ControlReusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("udpio: SO_REUSEPORT is not supported on this platform")
}

// SetDontFragment would set the don't-fragment bit; it is not supported
// here.
func SetDontFragment(*net.UDPConn, bool) error {
	return errors.New("udpio: DONT-FRAGMENT is not supported on this platform")
}
