//go:build linux

package udpio

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	reusePortSupported = true
	// DontFragmentSupported reports whether SetDontFragment works here:
	// Linux sets DF per socket (IP_MTU_DISCOVER, IPV6_DONTFRAG).
	DontFragmentSupported = true
)

// ControlReusePort sets SO_REUSEPORT on a socket before it binds; it has
// the signature of net.ListenConfig.Control and net.Dialer.Control. It
// returns an error where ReusePortSupported is false.
func ControlReusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt SO_REUSEPORT", serr)
	}
	return nil
}

// SetDontFragment makes c send with the don't-fragment bit (IPv4,
// IP_PMTUDISC_DO) or without fragmenting (IPv6, IPV6_DONTFRAG); v4 says
// which family c is. It returns an error where DontFragmentSupported is
// false.
func SetDontFragment(c *net.UDPConn, v4 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v4 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt", serr)
	}
	return nil
}
