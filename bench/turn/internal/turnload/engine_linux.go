package turnload

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/stun"
)

// slot is one client socket: one 5-tuple, so at most one allocation.
type slot struct {
	fd         int
	op         Op
	id         stun.TransactionID
	started    time.Time // when the operation's first request went out
	sentAt     time.Time // when the current request went out
	tries      int       // sends of the current request
	challenges int       // 401/438 answered for the operation
	pos        int       // index in Engine.inflight while op != OpNone
	auth       Auth
	allocated  bool
	relayed    netip.AddrPort
}

// Engine runs many client sockets from one goroutine: it sends each
// operation's requests with write(2) on the slot's connected socket and
// collects every ready socket's responses after one epoll_wait. It is not
// safe for concurrent use; Close releases the sockets.
type Engine struct {
	cfg      EngineConfig
	epfd     int
	slots    []slot
	inflight []int
	kr       Keyring
	events   []unix.EpollEvent
	rbuf     []byte
	wbuf     []byte
	msg      stun.Message
	seq      uint64
	// Stray counts datagrams that matched no request in flight.
	Stray int
	// SendErrors counts failed writes (the request then times out or is
	// resent).
	SendErrors int
}

// NewEngine opens n UDP sockets bound to cfg.ClientIP with a port of the
// kernel's choice, each connected to cfg.Server.
func NewEngine(cfg EngineConfig, n int) (*Engine, error) {
	if err := loopback.Check(cfg.Server); err != nil {
		return nil, err
	}
	if !cfg.ClientIP.IsLoopback() || cfg.ClientIP.Is4() != cfg.Server.Addr().Is4() {
		return nil, fmt.Errorf("client IP %v: want a loopback address of the server's family", cfg.ClientIP)
	}
	if cfg.RTO <= 0 {
		cfg.RTO = 250 * time.Millisecond
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 4
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	e := &Engine{
		cfg:    cfg,
		epfd:   epfd,
		slots:  make([]slot, 0, n),
		kr:     Keyring{Creds: cfg.Creds},
		events: make([]unix.EpollEvent, 256),
		rbuf:   make([]byte, 2048),
		wbuf:   make([]byte, 0, 1024),
	}
	for range n {
		if err := e.open(); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func (e *Engine) open() error {
	family := unix.AF_INET
	if e.cfg.Server.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			return fmt.Errorf("socket %d: %w (raise the limit with ulimit -n)", len(e.slots)+1, err)
		}
		return fmt.Errorf("socket: %w", err)
	}
	err = unix.Bind(fd, sockaddr(netip.AddrPortFrom(e.cfg.ClientIP, 0)))
	if err == nil {
		err = unix.Connect(fd, sockaddr(e.cfg.Server))
	}
	if err == nil {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(len(e.slots))}
		err = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	if err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("socket %d: %w", len(e.slots)+1, err)
	}
	e.slots = append(e.slots, slot{fd: fd})
	return nil
}

// Reopen closes every socket and opens as many new ones bound to ip, a
// loopback address of the server's family: a fresh set of 5-tuples. (coturn
// keeps a deleted allocation's session for a while and answers a new
// Allocate on the same 5-tuple with 437.) Allocations the old sockets held
// stay on the server until they expire.
func (e *Engine) Reopen(ip netip.Addr) error {
	if !ip.IsLoopback() || ip.Is4() != e.cfg.Server.Addr().Is4() {
		return fmt.Errorf("client IP %v: want a loopback address of the server's family", ip)
	}
	n := len(e.slots)
	for i := range e.slots {
		_ = unix.Close(e.slots[i].fd)
	}
	e.slots = e.slots[:0]
	e.cfg.ClientIP = ip
	for range n {
		if err := e.open(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes every socket. The server's allocations stay until they
// expire: delete them first (OpDelete) to free the server's ports.
func (e *Engine) Close() {
	for i := range e.slots {
		_ = unix.Close(e.slots[i].fd)
	}
	e.slots = nil
	if e.epfd >= 0 {
		_ = unix.Close(e.epfd)
		e.epfd = -1
	}
}

// Len returns the number of sockets.
func (e *Engine) Len() int { return len(e.slots) }

// Allocated appends the indices of the sockets that hold an allocation.
func (e *Engine) Allocated(dst []int) []int {
	for i := range e.slots {
		if e.slots[i].allocated {
			dst = append(dst, i)
		}
	}
	return dst
}

// Relayed returns socket i's relayed address, if it holds an allocation.
func (e *Engine) Relayed(i int) (netip.AddrPort, bool) {
	return e.slots[i].relayed, e.slots[i].allocated
}

// Run performs op on each socket in ids with at most window operations in
// flight. It starts no operation after startUntil (the rest are counted as
// Unstarted) and returns when every started operation has ended; each
// ends within the retransmission schedule (about 4 s by default).
func (e *Engine) Run(ids []int, op Op, window int, startUntil time.Time) RunResult {
	res := RunResult{Codes: map[int]int{}, Start: time.Now()}
	res.Last = res.Start
	window = max(1, window)
	e.inflight = e.inflight[:0]
	next := 0
	lastScan := res.Start
	for {
		now := time.Now()
		for len(e.inflight) < window && next < len(ids) && now.Before(startUntil) {
			e.start(ids[next], op, now)
			next++
		}
		if len(e.inflight) == 0 {
			break
		}
		n, err := unix.EpollWait(e.epfd, e.events, 5)
		if err != nil && !errors.Is(err, unix.EINTR) {
			// Cannot happen with a valid epoll fd; end rather than spin.
			res.TimedOut += len(e.inflight)
			e.inflight = e.inflight[:0]
			break
		}
		now = time.Now()
		for k := range max(n, 0) {
			e.drain(int(e.events[k].Fd), now, &res)
		}
		if now.Sub(lastScan) >= 5*time.Millisecond {
			e.expire(now, &res)
			lastScan = now
		}
	}
	res.Unstarted = len(ids) - next
	return res
}

// start begins op on socket i.
func (e *Engine) start(i int, op Op, now time.Time) {
	s := &e.slots[i]
	s.op, s.started, s.challenges = op, now, 0
	s.pos = len(e.inflight)
	e.inflight = append(e.inflight, i)
	e.send(i, now)
}

// send builds the slot's current request with a fresh transaction ID and
// writes it.
func (e *Engine) send(i int, now time.Time) {
	s := &e.slots[i]
	e.seq++
	id := &s.id
	id[0], id[1], id[2], id[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	for k := range 8 {
		id[4+k] = byte(e.seq >> (8 * k))
	}
	if s.op == OpDelete {
		e.wbuf = AppendDelete(e.wbuf[:0], s.id, &s.auth)
	} else {
		e.wbuf = AppendAllocate(e.wbuf[:0], s.id, &s.auth)
	}
	s.tries, s.sentAt = 1, now
	if _, err := unix.Write(s.fd, e.wbuf); err != nil {
		e.SendErrors++
	}
}

// finish ends socket i's operation.
func (e *Engine) finish(i int) {
	s := &e.slots[i]
	last := len(e.inflight) - 1
	moved := e.inflight[last]
	e.inflight[s.pos] = moved
	e.slots[moved].pos = s.pos
	e.inflight = e.inflight[:last]
	s.op = OpNone
}

// drain reads every datagram waiting on socket i.
func (e *Engine) drain(i int, now time.Time, res *RunResult) {
	if i < 0 || i >= len(e.slots) {
		return
	}
	s := &e.slots[i]
	for range 64 { // bounded: a socket cannot keep the loop to itself
		n, err := unix.Read(s.fd, e.rbuf)
		if err != nil {
			return // EAGAIN, or an ICMP error: the request times out
		}
		b := e.rbuf[:n]
		if s.op == OpNone || !IsReplyTo(b, &s.id) || e.msg.Parse(b) != nil {
			e.Stray++
			continue
		}
		r, err := ParseReply(&e.msg, s.op.method())
		if err != nil {
			e.Stray++
			continue
		}
		switch {
		case r.Success:
			if s.op == OpAllocate {
				s.allocated, s.relayed = true, r.Relayed
			} else {
				s.allocated = false
			}
			res.Done++
			res.Latency += now.Sub(s.started)
			res.Last = now
			e.finish(i)
		case s.challenges < 2 && s.auth.Learn(&r, &e.kr):
			s.challenges++
			res.Challenges++
			e.send(i, now)
		default:
			if r.Code == stun.CodeAllocationMismatch && s.op == OpDelete {
				s.allocated = false // already gone
			}
			res.Failed++
			res.Codes[r.Code]++
			res.Last = now
			e.finish(i)
		}
	}
}

// expire resends requests whose timeout passed and ends operations that
// used every try.
func (e *Engine) expire(now time.Time, res *RunResult) {
	for k := 0; k < len(e.inflight); {
		i := e.inflight[k]
		s := &e.slots[i]
		if now.Sub(s.sentAt) < e.cfg.RTO<<(s.tries-1) {
			k++
			continue
		}
		if s.tries >= e.cfg.Tries {
			res.TimedOut++
			e.finish(i) // moves another slot into position k
			continue
		}
		res.Retransmits++
		e.rebuildAndResend(i, now)
		k++
	}
}

// rebuildAndResend resends socket i's request with the same transaction ID.
// The shared write buffer may hold another request by now, so the message
// is rebuilt.
func (e *Engine) rebuildAndResend(i int, now time.Time) {
	s := &e.slots[i]
	if s.op == OpDelete {
		e.wbuf = AppendDelete(e.wbuf[:0], s.id, &s.auth)
	} else {
		e.wbuf = AppendAllocate(e.wbuf[:0], s.id, &s.auth)
	}
	s.tries++
	s.sentAt = now
	if _, err := unix.Write(s.fd, e.wbuf); err != nil {
		e.SendErrors++
	}
}
