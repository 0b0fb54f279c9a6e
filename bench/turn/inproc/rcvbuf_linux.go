package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setListenerRcvbuf sets SO_RCVBUF to size on every UDP socket of this
// process bound to port: an experiment from outside the server's code, to
// show what a larger receive buffer on the listener does to loss. It
// returns how many sockets it changed.
func setListenerRcvbuf(port, size int) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		var p int
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			p = a.Port
		case *unix.SockaddrInet6:
			p = a.Port
		}
		if p != port {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			return n, fmt.Errorf("SO_RCVBUF on fd %d: %w", fd, err)
		}
		n++
	}
	return n, nil
}
