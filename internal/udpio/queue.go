package udpio

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// Queue is a bounded queue of datagrams for one UDP socket that a writer
// goroutine (Run) sends in batches: all that have piled up go out in one
// Sender.Send (sendmmsg, with UDP GSO for runs of equal-size datagrams to
// one address). A bulk sender such as QUIC writes one datagram per call;
// sent with one system call each, on loopback or a fast LAN the calls cost
// more than the rest of the data path together. The queue costs a copy of
// each datagram into a pooled buffer and no added latency: Run sends at
// once whatever is queued when it wakes, and what is queued while it is in
// a system call goes out with the next.
//
// Put and Room may be called from any goroutine; Run from one. Datagrams
// the kernel refuses are counted (Dropped), as a lost UDP datagram would
// be; nothing reports them to Put's caller.
type Queue struct {
	target *Target
	limit  int
	mu     sync.Mutex
	// pending are the datagrams queued, each in the pooled buffer at
	// the same index of bufs. Guarded by mu.
	pending []Message
	bufs    []*[]byte
	kick    chan struct{} // cap 1: something was queued
	room    chan struct{} // cap 1: Run took the queue
	dropped atomic.Uint64
}

// NewQueue returns a queue of at most limit datagrams for c, an IPv4
// socket when v6 is false (as NewTarget). It does not own c.
func NewQueue(c *net.UDPConn, v6 bool, limit int) (*Queue, error) {
	t, err := NewTarget(c, v6)
	if err != nil {
		return nil, err
	}
	limit = max(limit, 1)
	return &Queue{
		target:  t,
		limit:   limit,
		pending: make([]Message, 0, limit),
		bufs:    make([]*[]byte, 0, limit),
		kick:    make(chan struct{}, 1),
		room:    make(chan struct{}, 1),
	}, nil
}

// Put queues a copy of b for to, unless the queue is full: then it
// returns false, and the caller may wait on Room and try again.
func (q *Queue) Put(b []byte, to netip.AddrPort) bool {
	q.mu.Lock()
	if len(q.pending) >= q.limit {
		q.mu.Unlock()
		return false
	}
	bp := netx.CopyBuf(b)
	q.pending = append(q.pending, Message{Buf: *bp, Addr: to})
	q.bufs = append(q.bufs, bp)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return true
}

// Room receives a value each time Run takes the queued datagrams, which
// makes room for a Put that found the queue full.
func (q *Queue) Room() <-chan struct{} { return q.room }

// Dropped returns how many queued datagrams the kernel refused.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Run sends what Put queues until stop is closed; then it sends what is
// still queued, once, and returns. Close the socket only after Run has
// returned, or the last datagrams (a QUIC CONNECTION_CLOSE, say) are
// lost. It allocates nothing once running.
func (q *Queue) Run(stop <-chan struct{}) {
	sender := NewSender()
	msgs := make([]Message, 0, q.limit)
	bufs := make([]*[]byte, 0, q.limit)
	// flush sends what is queued; false when nothing was.
	flush := func() bool {
		q.mu.Lock()
		msgs, q.pending = q.pending, msgs[:0]
		bufs, q.bufs = q.bufs, bufs[:0]
		q.mu.Unlock()
		if len(msgs) == 0 {
			return false
		}
		select {
		case q.room <- struct{}{}:
		default:
		}
		if sent, _ := sender.Send(q.target, msgs); sent < len(msgs) {
			q.dropped.Add(uint64(len(msgs) - sent))
		}
		for i, bp := range bufs {
			netx.FreeBuf(bp)
			bufs[i], msgs[i] = nil, Message{}
		}
		return true
	}
	for {
		select {
		case <-stop:
			flush()
			return
		case <-q.kick:
		}
		for flush() {
		}
	}
}
