//go:build linux

package udpio

import (
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// One system call for datagrams of many sockets. sendmmsg and recvmmsg
// batch the datagrams of one socket; a TURN server with many allocations
// at modest rates has one datagram for each of many relay sockets per
// wakeup, and pays a system call for each (on the machines measured,
// about 1 µs per call beyond the socket work itself). An io_uring
// instance (Linux 5.1; IORING_OP_SENDMSG and IORING_OP_RECVMSG since 5.3)
// takes one request per datagram, each on its own socket, and
// io_uring_enter submits them all and waits for them at once.
//
// It is used synchronously: every request carries MSG_DONTWAIT, so that
// on these non-blocking sockets it completes, or fails with EAGAIN,
// inside the io_uring_enter that submits it (the kernel does not arm a
// poll for a request that must not wait), and the call returns with
// every completion posted; a completion that comes later is waited for
// before submit returns. The buffers, headers and addresses a request
// points to are therefore used only during that call. Where io_uring is
// missing or forbidden (old kernels, seccomp profiles, the sysctl
// kernel.io_uring_disabled), newRing fails and the callers fall back to
// one system call per socket.

// io_uring ABI constants and layouts (include/uapi/linux/io_uring.h).
const (
	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	uringOpSendmsg = 9
	uringOpRecvmsg = 10

	uringEnterGetEvents = 1
	uringFeatSingleMmap = 1
)

// ringEntries is the submission queue size: the most requests one
// submit takes.
const ringEntries = 64

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

// uringSQE is struct io_uring_sqe, 64 bytes.
type uringSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, msgFlags uint32
	userData      uint64
	bufIndex      uint16
	personality   uint16
	spliceFDIn    int32
	addr3, pad    uint64
}

// uringCQE is struct io_uring_cqe, 16 bytes.
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// ring is an io_uring instance used by one goroutine at a time. Its
// memory is mapped from the kernel; it is released by a cleanup when its
// owner (a Sender or a Poller) becomes unreachable.
type ring struct {
	fd       int
	rings    []byte // the SQ and CQ rings (one mapping)
	sqeMem   []byte
	sqHead   *uint32
	sqTail   *uint32
	sqMask   uint32
	sqArray  []uint32
	sqes     []uringSQE
	cqHead   *uint32
	cqTail   *uint32
	cqMask   uint32
	cqes     []uringCQE
	pending  int  // requests added since the last submit
	broken   bool // io_uring_enter failed: use the ring no more
	submits  int  // io_uring_enter rounds that submitted requests, for tests
	released atomic.Bool
}

// ringDisabled turns io_uring off for the rings made afterwards, so that
// tests can compare both paths.
var ringDisabled atomic.Bool

// newRing sets up an io_uring instance with room for ringEntries
// requests.
func newRing() (*ring, error) {
	if ringDisabled.Load() {
		return nil, syscall.ENOSYS
	}
	var p uringParams
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, ringEntries, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, os.NewSyscallError("io_uring_setup", e)
	}
	r := &ring{fd: int(fd)}
	unix.CloseOnExec(r.fd)
	fail := func(err error) (*ring, error) {
		r.release()
		return nil, err
	}
	if p.features&uringFeatSingleMmap == 0 || p.sqEntries < ringEntries || p.cqEntries < ringEntries {
		return fail(syscall.ENOSYS) // before Linux 5.4: not worth a second mapping
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	var err error
	if r.rings, err = unix.Mmap(r.fd, uringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(os.NewSyscallError("mmap", err))
	}
	if r.sqeMem, err = unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(os.NewSyscallError("mmap", err))
	}
	base := unsafe.Pointer(&r.rings[0])
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sqHead, r.sqTail, r.sqMask = at(p.sqOff.head), at(p.sqOff.tail), *at(p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(at(p.sqOff.array), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = at(p.cqOff.head), at(p.cqOff.tail), *at(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	return r, nil
}

// release unmaps the rings and closes the instance. It may be called more
// than once.
func (r *ring) release() {
	if r.released.Swap(true) {
		return
	}
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.rings != nil {
		unix.Munmap(r.rings)
	}
	unix.Close(r.fd)
}

// releaseWith releases r once owner is unreachable.
func releaseWith[T any](owner *T, r *ring) {
	runtime.AddCleanup(owner, func(r *ring) { r.release() }, r)
}

// add queues a sendmsg or recvmsg of the message header h on fd, with
// the tag that its completion reports. The caller keeps h and what it
// points to alive and unchanged until submit returns, and adds at most
// ringEntries requests per submit.
func (r *ring) add(op uint8, fd int, h *unix.Msghdr, tag int) {
	tail := *r.sqTail // only this goroutine writes the tail
	idx := (tail + uint32(r.pending)) & r.sqMask
	r.sqes[idx] = uringSQE{opcode: op, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(h))),
		len: 1, msgFlags: unix.MSG_DONTWAIT, userData: uint64(tag)}
	r.sqArray[idx] = idx
	r.pending++
}

// submit hands the queued requests to the kernel, waits until all of
// them completed, and calls done with each one's tag and result (bytes,
// or a negative errno). After an error of io_uring_enter itself the ring
// is broken: it reports what completed, and its owner goes back to one
// system call per socket.
func (r *ring) submit(done func(tag int, res int32)) error {
	n := r.pending
	if n == 0 {
		return nil
	}
	r.pending = 0
	r.submits++
	atomic.StoreUint32(r.sqTail, *r.sqTail+uint32(n)) // publishes the entries
	submitted, reaped := 0, 0
	for reaped < n {
		var got uintptr
		var e syscall.Errno
		if submitted < n {
			// Submit without waiting: requests that must not wait
			// complete inside this call, so it is a raw system call, as
			// for sendmmsg (mmsg_linux.go).
			got, _, e = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n-submitted), 0, 0, 0, 0)
		} else {
			// A kernel that completes some of them later (before Linux
			// 5.11 a request could go to a worker thread): wait for them
			// telling the Go scheduler.
			got, _, e = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, uintptr(n-reaped), uringEnterGetEvents, 0, 0)
		}
		if e == 0 && submitted < n && got == 0 {
			e = unix.EAGAIN // took none: do not spin
		}
		switch e {
		case 0:
			if submitted < n {
				submitted += int(got)
			}
		case unix.EINTR:
		default:
			r.broken = true
			r.reap(done)
			return os.NewSyscallError("io_uring_enter", e)
		}
		reaped += r.reap(done)
	}
	return nil
}

// reap hands the posted completions to done and returns how many there
// were.
func (r *ring) reap(done func(tag int, res int32)) int {
	head := *r.cqHead // only this goroutine writes the head
	tail := atomic.LoadUint32(r.cqTail)
	k := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		done(int(c.userData), c.res)
		k++
	}
	atomic.StoreUint32(r.cqHead, head)
	return k
}

// spreadState is a Sender's scratch for SendSpread over its ring.
type spreadState struct {
	ts   []*Target
	ms   []Message
	next int                // the next message whose socket to pin
	fds  [ringEntries]int32 // the pinned descriptor of each message; -1: not sent
	pin  func(fd uintptr)   // s.pinned
	done func(int, int32)   // s.spreadDone
}

// sendSpread sends ms[i] through ts[i], up to ringEntries messages per
// io_uring_enter, or one Send per run of messages through one Target
// without a ring. Messages that all go through one Target take one Send
// even with a ring: an io_uring request costs more than the sendmsg or
// sendmmsg it replaces (BenchmarkSendSpread: 5.1 against 4.6 µs for one
// datagram), and pays only when it saves system calls.
func (s *Sender) sendSpread(ts []*Target, ms []Message) int {
	if oneTarget(ts) {
		return sendRuns(s, ts, ms)
	}
	if !s.ringTried {
		s.ringTried = true
		if r, err := newRing(); err == nil {
			s.ring = r
			s.sp.pin, s.sp.done = s.pinned, s.spreadDone
			releaseWith(s, r)
		}
	}
	if s.ring == nil || s.ring.broken {
		return sendRuns(s, ts, ms)
	}
	sent := 0
	for len(ms) > 0 {
		k := min(len(ms), ringEntries)
		sent += s.spreadRing(ts[:k], ms[:k])
		ts, ms = ts[k:], ms[k:]
	}
	return sent
}

// oneTarget reports whether every message of a SendSpread goes through
// the same Target.
func oneTarget(ts []*Target) bool {
	for _, t := range ts[min(1, len(ts)):] {
		if t != ts[0] {
			return false
		}
	}
	return true
}

// spreadRing sends up to ringEntries messages with one io_uring_enter.
// Each socket is pinned (held open through its RawConn.Control) while the
// requests that name its descriptor are in flight, so that a socket
// closed meanwhile is skipped and never confused with a new one that
// reuses its number.
func (s *Sender) spreadRing(ts []*Target, ms []Message) int {
	st, sp := &s.st, &s.sp
	for i := range ms {
		ms[i].N = -1
		sp.fds[i] = -1
		family := unix.AF_INET
		if ts[i].v6 {
			family = unix.AF_INET6
		}
		st.pack(i, ms[i].Buf)
		n, err := encodeSockaddr(family, ms[i].Addr, &st.names[i])
		if err != nil {
			continue // not sent
		}
		st.hdrs[i].hdr.Namelen = n
		sp.fds[i] = 0 // to pin
	}
	sp.ts, sp.ms, sp.next = ts, ms, 0
	s.pinFrom()
	sent := 0
	for i := range ms {
		if ms[i].N >= 0 {
			sent++
		}
	}
	sp.ts, sp.ms = nil, nil // keep no reference to the caller's slices
	return sent
}

// pinFrom pins the sockets of the messages from sp.next on, one nested
// Control each, and submits once all are pinned.
func (s *Sender) pinFrom() {
	sp := &s.sp
	for sp.next < len(sp.ms) {
		i := sp.next
		if sp.fds[i] < 0 {
			sp.next++
			continue
		}
		if sp.ts[i].rc.Control(sp.pin) == nil {
			return // pinned, and the rest done inside
		}
		sp.fds[i] = -1 // closed
		sp.next++
	}
	for i := range sp.ms {
		if sp.fds[i] >= 0 {
			s.ring.add(uringOpSendmsg, int(sp.fds[i]), &s.st.hdrs[i].hdr, i)
		}
	}
	s.ring.submit(sp.done)
}

func (s *Sender) pinned(fd uintptr) {
	sp := &s.sp
	sp.fds[sp.next] = int32(fd)
	sp.next++
	s.pinFrom()
}

func (s *Sender) spreadDone(tag int, res int32) {
	if res >= 0 {
		s.sp.ms[tag].N = int(res)
	}
}

// ringBatch is the most sockets a Poller reads with one io_uring_enter.
// Each needs a slot for the largest datagram before the reads are made,
// so this bounds the Poller's second arena (32 slots of about 64 KiB for
// a TURN relay's Poller; only the pages that datagrams fill are touched).
const ringBatch = 32

// ringReads is a Poller's scratch for reading one datagram from each of
// many ready sockets with one io_uring_enter.
type ringReads[T any] struct {
	r     *ring
	arena []byte // ringBatch slots; made at the first use
	socks [ringBatch]*pollSock[T]
	fds   [ringBatch]int32 // pinned descriptors; -1: closed meanwhile
	res   [ringBatch]int32 // each read's result: bytes or -errno
	hdrs  [ringBatch]unix.Msghdr
	iovs  [ringBatch]unix.Iovec
	names [ringBatch]unix.RawSockaddrInet6
	k     int // sockets in this batch
	next  int // the next socket to pin
	pin   func(fd uintptr)
	done  func(int, int32)
}

// readSpread reads one datagram from each socket of the first n events,
// ringBatch sockets per io_uring_enter, and hands each to the handler.
// A socket that holds more stays ready for the next epoll_wait.
func (p *Poller[T]) readSpread(n int) {
	rr := p.rr
	rr.k = 0
	for i := range n {
		s := p.sockOf(&p.events[i])
		if s == nil {
			continue // removed meanwhile
		}
		rr.socks[rr.k] = s
		rr.k++
		if rr.k == ringBatch {
			p.readRing()
		}
	}
	if rr.k > 0 {
		p.readRing()
	}
}

// readRing reads the batch of rr.socks, each socket pinned as Sender's
// spreadRing pins them, and hands what came to the handler.
func (p *Poller[T]) readRing() {
	rr, cfg := p.rr, &p.cfg
	room := cfg.slotRoom()
	if rr.arena == nil {
		rr.arena = make([]byte, ringBatch*room)
	}
	p.flush() // the slots of the ring's arena are handed over again
	for i := range rr.k {
		slot := rr.arena[i*room+cfg.Headroom : i*room+cfg.Headroom+cfg.MaxDatagram]
		rr.iovs[i].Base = unsafe.SliceData(slot)
		rr.iovs[i].SetLen(len(slot))
		rr.hdrs[i] = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&rr.names[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &rr.iovs[i]}
		rr.hdrs[i].SetIovlen(1)
		rr.fds[i], rr.res[i] = -1, -int32(unix.EAGAIN)
	}
	rr.next = 0
	p.pinFrom()
	for i := range rr.k {
		s := rr.socks[i]
		rr.socks[i] = nil
		switch res := rr.res[i]; {
		case res >= 0:
			base := i * room
			p.batch = append(p.batch, Message{Buf: rr.arena[base : base+cfg.Headroom+int(res)+cfg.Tailroom], N: int(res), Addr: decodeSockaddr(&rr.names[i])})
			p.got++
			p.handed = true
			p.handOver(s)
		case res == -int32(unix.EAGAIN) || res == -int32(unix.EINTR):
		default:
			p.h.ReadFailed(s.v, os.NewSyscallError("recvmsg", syscall.Errno(-res)))
		}
	}
	rr.k = 0
}

// pinFrom pins the sockets from rr.next on, one nested Control each, and
// submits the reads once all are pinned.
func (p *Poller[T]) pinFrom() {
	rr := p.rr
	for rr.next < rr.k {
		if rr.socks[rr.next].rc.Control(rr.pin) == nil {
			return // pinned, and the rest done inside
		}
		rr.next++ // closed meanwhile
	}
	for i := range rr.k {
		if rr.fds[i] >= 0 {
			rr.r.add(uringOpRecvmsg, int(rr.fds[i]), &rr.hdrs[i], i)
		}
	}
	rr.r.submit(rr.done)
}

func (p *Poller[T]) pinned(fd uintptr) {
	rr := p.rr
	rr.fds[rr.next] = int32(fd)
	rr.next++
	p.pinFrom()
}

func (p *Poller[T]) readDone(tag int, res int32) { p.rr.res[tag] = res }
