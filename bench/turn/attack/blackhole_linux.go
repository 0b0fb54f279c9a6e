package main

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// blackHole is a loopback TCP address that never answers a SYN: a
// listener with a backlog of 0 whose accept queue is full, so the kernel
// drops further SYNs. It stands for the peers of the Connect flood that
// never answered, without any outside address.
type blackHole struct {
	fd    int
	addr  netip.AddrPort
	conns []net.Conn
}

func newBlackHole() (*blackHole, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	h := &blackHole{fd: fd}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		h.close()
		return nil, err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		h.close()
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		h.close()
		return nil, err
	}
	h.addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp4", h.addr.String(), 100*time.Millisecond)
		if err != nil {
			return h, nil // full: SYNs are dropped now
		}
		h.conns = append(h.conns, c)
	}
	h.close()
	return nil, fmt.Errorf("%v keeps accepting connections", h.addr)
}

func (h *blackHole) close() {
	for _, c := range h.conns {
		c.Close()
	}
	syscall.Close(h.fd)
}
