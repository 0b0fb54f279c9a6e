//go:build linux

package udpio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller reads the UDP sockets registered with it and hands their
// datagrams to its handler. Add, Remove and Close are safe for concurrent
// use; Run and PollNow must not run at the same time. Sockets stay
// *net.UDPConn, read through their RawConn, so a socket closed meanwhile
// is never confused with a new one that reuses its descriptor number.
type Poller[T any] struct {
	h    PollHandler[T]
	cfg  PollConfig
	ep   *os.File // the epoll descriptor, non-blocking, on Go's netpoller
	epfd int
	erc  syscall.RawConn

	mu     sync.RWMutex // guards socks
	socks  map[uint64]*pollSock[T]
	nextID atomic.Uint64

	// Used only by the goroutine in Run or PollNow.
	events [64]unix.EpollEvent
	arena  []byte
	batch  []Message
	sa     unix.RawSockaddrInet6
	cur    *pollSock[T]
	off    int                   // arena bytes handed over since the last Flush
	limit  int                   // datagrams to read from each socket this round
	got    int                   // datagrams read since PollNow began
	drain  func(fd uintptr) bool // drains cur's socket
	ready  func(fd uintptr) bool // handles the epoll instance's events
	now    func(fd uintptr)      // PollNow's call of ready
	handed bool                  // slots of the ring's arena handed over since the last Flush
	rr     *ringReads[T]         // reads many sockets per system call; nil without io_uring
}

type pollSock[T any] struct {
	v  T
	rc syscall.RawConn
}

// Registration is a socket's membership in a Poller, for Remove. Its
// zero value is registered nowhere.
type Registration struct {
	id uint64
	rc syscall.RawConn
}

// NewPoller returns a Poller that hands what it reads to h. It starts no
// goroutine: Run reads. Close releases the epoll instance.
func NewPoller[T any](cfg PollConfig, h PollHandler[T]) (*Poller[T], error) {
	cfg = cfg.withDefaults()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("udpio: %w", os.NewSyscallError("epoll_create1", err))
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("udpio: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "udpio-epoll")
	erc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("udpio: %w", err)
	}
	p := &Poller[T]{h: h, cfg: cfg, ep: ep, epfd: epfd, erc: erc, socks: make(map[uint64]*pollSock[T]),
		// Room for two of the largest datagrams, and for a full drain
		// of small ones; a drain of larger ones hands over what it holds
		// when the room for one more runs out.
		arena: make([]byte, 2*cfg.slotRoom()+32<<10),
		batch: make([]Message, 0, maxDrain)}
	p.drain = p.drainCur
	p.ready = p.onReady
	p.now = func(fd uintptr) { p.onReady(fd) }
	if r, err := newRing(); err == nil {
		p.rr = &ringReads[T]{r: r}
		p.rr.pin, p.rr.done = p.pinned, p.readDone
		releaseWith(p, r)
	}
	return p, nil
}

// Add registers c, whose datagrams go to the handler with v. Remove it
// before closing c.
func (p *Poller[T]) Add(c *net.UDPConn, v T) (Registration, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Registration{}, fmt.Errorf("udpio: %w", err)
	}
	id := p.nextID.Add(1)
	p.mu.Lock()
	p.socks[id] = &pollSock[T]{v: v, rc: rc}
	p.mu.Unlock()
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err = errors.Join(err, cerr); err != nil {
		p.mu.Lock()
		delete(p.socks, id)
		p.mu.Unlock()
		return Registration{}, fmt.Errorf("udpio: epoll_ctl: %w", err)
	}
	return Registration{id: id, rc: rc}, nil
}

// Remove unregisters a socket; a zero Registration is ignored. The
// handler may still be running for a batch of it when Remove returns.
func (p *Poller[T]) Remove(r Registration) {
	if r.rc == nil {
		return
	}
	r.rc.Control(func(fd uintptr) {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.mu.Lock()
	delete(p.socks, r.id)
	p.mu.Unlock()
}

// Run reads until Close. It returns nil after Close, having released
// the Poller's io_uring instance.
func (p *Poller[T]) Run() error {
	for {
		if err := p.erc.Read(p.ready); err != nil {
			if p.rr != nil {
				p.rr.r.release()
				p.rr = nil
			}
			return nil // closed
		}
	}
}

// Close ends Run and releases the epoll instance. The registered sockets
// are not closed. It may be called more than once.
func (p *Poller[T]) Close() error {
	if err := p.ep.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// PollNow handles the sockets that are ready now, as Run does, without
// waiting, and returns how many datagrams it read. It is for a caller
// that drives the Poller itself (and for tests); it must not run while
// Run does.
func (p *Poller[T]) PollNow() int {
	p.got = 0
	p.erc.Control(p.now)
	return p.got
}

// onReady handles every ready socket and returns false, so that the raw
// Read waits for the epoll descriptor to become readable again. It calls
// epoll_wait until no event is left, because Go's netpoller reports the
// descriptor edge-triggered, and the handler's Flush after each round.
func (p *Poller[T]) onReady(epfd uintptr) bool {
	defer p.flush()
	for {
		n, err := epollPoll(int(epfd), p.events[:])
		if err == unix.EINTR {
			continue
		}
		if err != 0 || n <= 0 {
			return false
		}
		p.flush() // the previous round's
		p.limit = maxDrain
		if n >= manyReady {
			p.limit = 1
			if p.rr != nil && !p.rr.r.broken {
				p.readSpread(n)
				continue
			}
		}
		for i := range n {
			s := p.sockOf(&p.events[i])
			if s == nil {
				continue // removed meanwhile
			}
			p.cur = s
			s.rc.Read(p.drain) // returns at once: drain never asks to wait
			p.cur = nil
		}
	}
}

// sockOf returns the socket an epoll event is about, or nil if it was
// removed meanwhile.
func (p *Poller[T]) sockOf(ev *unix.EpollEvent) *pollSock[T] {
	id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.socks[id]
}

// flush has the handler send what it built in the slots handed over, so
// that the arena can be reused.
func (p *Poller[T]) flush() {
	if p.off > 0 || p.handed {
		p.h.Flush()
		p.off, p.handed = 0, false
	}
}

// drainCur reads up to p.limit datagrams from the current socket into
// the arena after what earlier sockets of this round left there, and
// hands them to the handler, in one batch or, when the arena fills (and
// is flushed), several. It returns true: a socket with more datagrams
// stays ready for the next epoll_wait. It allocates nothing.
func (p *Poller[T]) drainCur(fd uintptr) bool {
	s, cfg := p.cur, &p.cfg
	room := cfg.slotRoom()
	defer p.handOver(s)
	for range p.limit {
		if len(p.arena)-p.off < room {
			p.handOver(s)
			p.flush()
		}
		slot := p.arena[p.off : p.off+room]
		n, from, errno := recvfrom(int(fd), slot[cfg.Headroom:cfg.Headroom+cfg.MaxDatagram], &p.sa)
		switch errno {
		case 0:
			p.batch = append(p.batch, Message{Buf: slot[:cfg.Headroom+n+cfg.Tailroom], N: n, Addr: from})
			p.got++
			p.off += (cfg.Headroom + n + cfg.Tailroom + 7) &^ 7
		case unix.EAGAIN:
			return true
		case unix.EINTR:
		default:
			p.handOver(s)
			p.h.ReadFailed(s.v, os.NewSyscallError("recvfrom", errno))
			return true
		}
	}
	return true
}

// handOver gives the batch read so far to the handler.
func (p *Poller[T]) handOver(s *pollSock[T]) {
	if len(p.batch) == 0 {
		return
	}
	p.h.Received(s.v, p.batch)
	clear(p.batch)
	p.batch = p.batch[:0]
}

// epollPoll is epoll_wait with a timeout of 0. It never blocks, so, like
// recvfrom below, it is made without telling the Go scheduler, which
// unix.EpollWait does at a cost of its own on every call.
func epollPoll(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))),
		uintptr(len(events)), 0, 0, 0)
	return int(n), e
}

// recvfrom reads one datagram without waiting (MSG_DONTWAIT). Like the
// batch calls it does not tell the Go scheduler, as it never blocks.
func recvfrom(fd int, b []byte, sa *unix.RawSockaddrInet6) (int, netip.AddrPort, unix.Errno) {
	salen := uint32(unix.SizeofSockaddrInet6)
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(sa)), uintptr(unsafe.Pointer(&salen)))
	if e != 0 {
		return 0, netip.AddrPort{}, e
	}
	return int(n), decodeSockaddr(sa), 0
}
