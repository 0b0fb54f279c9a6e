package main

import (
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// countRun reads every socket of socks until stop is set and a read finds
// nothing for 50 ms, and counts this run's packets. One goroutine reads
// them all through an epoll instance of its own, with non-blocking reads:
// a goroutine per socket would cost the generator more than the server
// spends relaying.
func countRun(socks []*net.UDPConn, token uint64, stop *atomic.Bool) counts {
	var c counts
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return c
	}
	defer unix.Close(epfd)
	fds := make([]int, len(socks))
	for i, s := range socks {
		rc, err := s.SyscallConn()
		if err != nil {
			return c
		}
		rc.Control(func(fd uintptr) { fds[i] = int(fd) })
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fds[i], &ev); err != nil {
			return c
		}
	}
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 2048)
	for {
		n, err := unix.EpollWait(epfd, events, 50)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 && stop.Load() {
			return c
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			for {
				k, err := unix.Read(fds[i], buf) // Go's sockets are non-blocking: EAGAIN when drained
				if err != nil {
					break
				}
				c.tally(i, buf[:k], token)
			}
		}
	}
}
