//go:build linux

package turnserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
)

// dontFragmentSupported: Linux sets DF per socket (IP_MTU_DISCOVER,
// IPV6_DONTFRAG), so DONT-FRAGMENT is honoured. RFC 8656, Section 14.
const dontFragmentSupported = true

func setDontFragment(c *net.UDPConn, v4 bool) error {
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
	return serr
}

// reusePortSupported: Connect dials from the relayed address itself.
const reusePortSupported = true

// reusePort sets SO_REUSEPORT, so that a TCP relay can both listen on
// its address and dial peers from it (RFC 6062, Section 5.2).
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// sockaddr is the per-read-buffer room for a datagram's source address.
type sockaddr struct {
	sa  unix.RawSockaddrAny
	len uint32
}

// Reading relay sockets on Linux. An idle allocation must cost little
// (RFC 8656 servers hold tens of thousands), so relay sockets have no
// goroutine each: a few pollers, one per CPU, each own an epoll instance
// holding their share of the relay sockets. A poller's goroutine parks on
// Go's netpoller until its epoll instance has events (an epoll descriptor
// is itself pollable), then drains each ready socket with recvfrom into
// the poller's buffer. Sockets stay *net.UDPConn, read through their
// RawConn, so a socket closed meanwhile is never confused with a new one
// that reuses its descriptor number.

// relayReader is a relay's registration with its poller.
type relayReader struct {
	p  *poller
	id uint64 // key in p.relays and in epoll's event data; never reused
	rc syscall.RawConn
}

// poller reads the relay sockets registered with it. Its goroutine is
// started by startPollersLocked and ends when Close closes epoll.
type poller struct {
	s    *Server
	ep   *os.File // the epoll descriptor, non-blocking, on Go's netpoller
	epfd int

	mu     sync.RWMutex // guards relays
	relays map[uint64]*relay

	// Used only by the poller's goroutine.
	events [64]unix.EpollEvent
	pb     *readBuf
	cur    *relay
	drain  func(fd uintptr) bool // drains cur's socket
	ready  func(fd uintptr) bool // handles the epoll instance's events

	// The messages to a UDP client that one drain collects, built in
	// arena, sent at its end with one Sender.Send (sendmmsg, and UDP GSO
	// for runs of one size).
	arena  []byte
	out    []udpio.Message
	outN   []int // data bytes of each message in out
	sender *udpio.Sender
	// gsoDisabled is sender.GSODisabled() as last added to the server's
	// counter.
	gsoDisabled uint64
}

// slotRoom is the arena room a datagram is read into: headroom, the
// largest datagram and padding, as in a readBuf.
const slotRoom = len(readBuf{}.b)

// arenaSize holds a drain of small datagrams; a drain of larger ones
// sends what it holds when the room for one more runs out.
const arenaSize = 2*slotRoom + 32<<10

// maxDrain bounds the datagrams read from one socket per event, so that
// one busy relay cannot starve the others of its poller.
const maxDrain = 64

func newPoller(s *Server) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	p := &poller{s: s, ep: os.NewFile(uintptr(epfd), "turn-relay-epoll"), epfd: epfd, relays: make(map[uint64]*relay), pb: getReadBuf(),
		arena: make([]byte, arenaSize), out: make([]udpio.Message, 0, maxDrain), outN: make([]int, 0, maxDrain), sender: udpio.NewSender()}
	p.drain = p.drainCur
	p.ready = p.onReady
	return p, nil
}

// startPollersLocked starts the pollers if they are not running. s.mu
// must be held.
func (s *Server) startPollersLocked() error {
	if s.pollers != nil {
		return nil
	}
	n := max(1, runtime.GOMAXPROCS(0))
	ps := make([]*poller, 0, n)
	for range n {
		p, err := newPoller(s)
		if err != nil {
			for _, p := range ps {
				p.ep.Close()
			}
			return err
		}
		ps = append(ps, p)
	}
	rcs := make([]syscall.RawConn, n)
	for i, p := range ps {
		rc, err := p.ep.SyscallConn()
		if err != nil {
			for _, p := range ps {
				p.ep.Close()
			}
			return err
		}
		rcs[i] = rc
	}
	s.pollers = ps
	for i, p := range ps {
		s.wg.Add(1)
		go p.run(rcs[i])
	}
	return nil
}

// stopPollers ends the pollers' goroutines, once every relay is closed.
func (s *Server) stopPollers() {
	s.mu.Lock()
	ps := s.pollers
	s.mu.Unlock()
	for _, p := range ps {
		p.ep.Close()
	}
}

func (p *poller) run(rc syscall.RawConn) {
	defer p.s.wg.Done()
	defer putReadBuf(p.pb)
	for {
		if err := rc.Read(p.ready); err != nil {
			return // closed
		}
	}
}

// onReady handles every ready relay socket and returns false, so that the
// raw Read waits for the epoll descriptor to become readable again. It
// calls epoll_wait until no event is left, because Go's netpoller reports
// the descriptor edge-triggered.
func (p *poller) onReady(epfd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(epfd), p.events[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		for i := range n {
			ev := &p.events[i]
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.RLock()
			r := p.relays[id]
			p.mu.RUnlock()
			if r == nil {
				continue // closed meanwhile
			}
			p.cur = r
			r.rd.rc.Read(p.drain) // returns at once: drain never asks to wait
			p.cur = nil
		}
	}
}

// drainCur reads up to maxDrain datagrams from the current relay's socket
// and returns true. To a UDP client it sends them together at the end;
// to a TCP or TLS client one by one. It allocates nothing.
func (p *poller) drainCur(fd uintptr) bool {
	r, pb := p.cur, p.pb
	if r.a.ctgt == nil {
		for i := 0; i < maxDrain; i++ {
			n, from, errno := recvfrom(int(fd), pb.b[headroom:], &pb.sa)
			switch errno {
			case 0:
				r.fromPeer(pb, n, from)
			case unix.EAGAIN:
				return true
			case unix.EINTR:
			default:
				r.a.s.readErrors.Add(1)
				return true
			}
		}
		return true // the rest at the next epoll_wait: the socket stays ready
	}
	defer p.flush(r)
	off := 0
	for i := 0; i < maxDrain; i++ {
		if len(p.arena)-off < slotRoom {
			p.flush(r)
			off = 0
		}
		slot := p.arena[off : off+slotRoom]
		n, from, errno := recvfrom(int(fd), slot[headroom:], &pb.sa)
		switch errno {
		case 0:
			if msg := r.toClientMessage(slot, n, from, pb.rng); msg != nil {
				p.out = append(p.out, udpio.Message{Buf: msg, Addr: r.a.key.client})
				p.outN = append(p.outN, n)
				off += (headroom + n + 4 + 7) &^ 7
			}
		case unix.EAGAIN:
			return true
		case unix.EINTR:
		default:
			r.a.s.readErrors.Add(1)
			return true
		}
	}
	return true
}

// flush sends the messages a drain of r collected to r's client.
func (p *poller) flush(r *relay) {
	if len(p.out) == 0 {
		return
	}
	a := r.a
	f := &a.toClient
	sent, _ := p.sender.Send(a.ctgt, p.out)
	var bytes uint64
	for i := range p.out {
		if p.out[i].N >= 0 {
			bytes += uint64(p.outN[i])
		}
		p.out[i] = udpio.Message{}
	}
	if sent < len(p.out) {
		f.sendErrors.Add(uint64(len(p.out) - sent))
	}
	f.packets.Add(uint64(sent))
	f.bytes.Add(bytes)
	if d := p.sender.GSODisabled(); d != p.gsoDisabled {
		a.s.gsoDisabled.Add(d - p.gsoDisabled)
		p.gsoDisabled = d
	}
	p.out, p.outN = p.out[:0], p.outN[:0]
}

// start registers the relay with a poller. s.mu must be held and the
// pollers started (commit).
func (r *relay) start() {
	s := r.a.s
	p := s.pollers[s.nextPoller.Add(1)%uint32(len(s.pollers))]
	rc, err := r.conn.SyscallConn()
	if err != nil {
		return
	}
	id := s.relayIDs.Add(1)
	r.rd = relayReader{p: p, id: id, rc: rc}
	p.mu.Lock()
	p.relays[id] = r
	p.mu.Unlock()
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		s.readErrors.Add(1)
		s.log.Error("turn relay registration failed", "err", errors.Join(err, cerr))
	}
}

// stopReading removes the relay from its poller before the socket closes.
func (r *relay) stopReading() {
	p := r.rd.p
	if p == nil {
		return
	}
	r.rd.rc.Control(func(fd uintptr) {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.mu.Lock()
	delete(p.relays, r.rd.id)
	p.mu.Unlock()
}

// recvfrom reads one datagram without waiting (MSG_DONTWAIT); like
// udpio's batch calls it does not tell the Go scheduler, as it never
// blocks.
func recvfrom(fd int, b []byte, sa *sockaddr) (int, netip.AddrPort, unix.Errno) {
	sa.len = unix.SizeofSockaddrAny
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa.sa)), uintptr(unsafe.Pointer(&sa.len)))
	if e != 0 {
		return 0, netip.AddrPort{}, e
	}
	switch sa.sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return int(n), netip.AddrPortFrom(netip.AddrFrom4(p.Addr), port), 0
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return int(n), netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), port), 0
	}
	return int(n), netip.AddrPort{}, 0 // no address: dropped by fromPeer's permission check
}
