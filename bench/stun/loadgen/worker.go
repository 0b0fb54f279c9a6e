package main

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/icebreaker-net/icebreaker/stun"
)

// requestSize is the size of a Binding request with FINGERPRINT and nothing
// else: a 20-byte header and an 8-byte attribute.
const requestSize = stun.HeaderSize + stun.AttrHeaderSize + stun.FingerprintSize

// recvBufSize holds any response a STUN server sends to a bare Binding
// request (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN,
// OTHER-ADDRESS, SOFTWARE and FINGERPRINT fit well below it).
const recvBufSize = 1500

// scanEvery is how often a worker looks for timed-out slots; it is also the
// read deadline, so a worker notices a stop request within this time.
const scanEvery = 20 * time.Millisecond

// batchConn is the batch I/O of golang.org/x/net's ipv4.PacketConn and
// ipv6.PacketConn, which share one Message type.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// counters are a worker's totals. The worker adds to them once per loop
// iteration; the main goroutine reads them at any time.
type counters struct {
	sent       atomic.Uint64 // requests written to the socket
	received   atomic.Uint64 // responses that matched an in-flight request
	lost       atomic.Uint64 // in-flight requests that timed out and were replaced
	stray      atomic.Uint64 // datagrams that were not a matching Binding success
	sendErrors atomic.Uint64 // failed WriteBatch calls
	recvErrors atomic.Uint64 // failed ReadBatch calls other than timeouts
}

// slot is one in-flight request. The transaction ID carries the slot index
// in its first four bytes so that a response finds its slot without a map.
type slot struct {
	id     stun.TransactionID
	sentAt time.Time
	pkt    [requestSize]byte
}

// worker drives one connected UDP socket: it keeps len(slots) requests in
// flight, sending and receiving in batches. A worker is owned by the
// goroutine that calls run; only its counters are shared.
type worker struct {
	conn    *net.UDPConn
	pc      batchConn
	timeout time.Duration
	batch   int
	budget  *atomic.Int64 // requests left to send, shared by all workers
	spent   func()        // called when the budget runs out
	stop    *atomic.Bool
	c       *counters

	slots   []slot
	seq     uint64
	pending []int // slots whose new request is not yet sent
	wmsgs   []ipv4.Message
	rmsgs   []ipv4.Message

	// Local tallies, published to c once per loop iteration.
	sent, received, lost, stray uint64
}

// shared is what all workers of one run share.
type shared struct {
	budget *atomic.Int64 // requests left to send
	spent  func()        // called (possibly many times) when budget runs out
	stop   *atomic.Bool  // set by the main goroutine to end the run
}

func newWorker(conn *net.UDPConn, pc batchConn, inflight, batch int, timeout time.Duration, sh shared, c *counters) *worker {
	w := &worker{
		conn:    conn,
		pc:      pc,
		timeout: timeout,
		batch:   batch,
		budget:  sh.budget,
		spent:   sh.spent,
		stop:    sh.stop,
		c:       c,
		slots:   make([]slot, inflight),
		pending: make([]int, 0, inflight),
		wmsgs:   make([]ipv4.Message, batch),
		rmsgs:   make([]ipv4.Message, batch),
	}
	for i := range w.wmsgs {
		w.wmsgs[i].Buffers = make([][]byte, 1)
	}
	bufs := make([]byte, batch*recvBufSize)
	for i := range w.rmsgs {
		w.rmsgs[i].Buffers = [][]byte{bufs[i*recvBufSize : (i+1)*recvBufSize]}
	}
	return w
}

// arm gives slot i a fresh transaction ID and request and queues it for
// sending. A response to the slot's previous request no longer matches.
func (w *worker) arm(i int, now time.Time) {
	s := &w.slots[i]
	w.seq++
	binary.BigEndian.PutUint32(s.id[0:4], uint32(i))
	binary.BigEndian.PutUint64(s.id[4:12], w.seq)
	b := stun.AppendHeader(s.pkt[:0], stun.BindingRequest, s.id)
	stun.AppendFingerprint(b)
	s.sentAt = now
	w.pending = append(w.pending, i)
}

// flush sends every pending request in batches. Requests that cannot be
// sent (the budget ran out, or the socket reported an error such as
// ECONNREFUSED from an earlier ICMP port unreachable) stay in their slots
// and time out like lost ones.
func (w *worker) flush() {
	p := w.pending
	for len(p) > 0 {
		n := min(len(p), w.batch)
		if w.budget.Add(-int64(n)) < 0 {
			w.budget.Add(int64(n))
			w.spent()
			break
		}
		for j := range n {
			w.wmsgs[j].Buffers[0] = w.slots[p[j]].pkt[:]
		}
		sent, err := w.pc.WriteBatch(w.wmsgs[:n], 0)
		if sent < 0 {
			sent = 0
		}
		w.budget.Add(int64(n - sent)) // give back what was not sent
		w.sent += uint64(sent)
		p = p[sent:]
		if err != nil {
			w.c.sendErrors.Add(1)
			break
		}
	}
	w.pending = w.pending[:0]
}

// receive matches the n datagrams in rmsgs against the in-flight slots and
// re-arms each slot that got its answer.
func (w *worker) receive(n int, now time.Time) {
	for k := range n {
		m := &w.rmsgs[k]
		b := m.Buffers[0][:m.N]
		// A Binding success response (type 0x0101) with the magic cookie.
		if !stun.Is(b) || b[0] != 0x01 || b[1] != 0x01 {
			w.stray++
			continue
		}
		i := int(binary.BigEndian.Uint32(b[8:12]))
		if i >= len(w.slots) || [12]byte(b[8:20]) != w.slots[i].id {
			w.stray++ // a late answer to a request already replaced
			continue
		}
		w.received++
		w.arm(i, now)
	}
}

// expire replaces every request older than the timeout.
func (w *worker) expire(now time.Time) {
	for i := range w.slots {
		if now.Sub(w.slots[i].sentAt) >= w.timeout {
			w.lost++
			w.arm(i, now)
		}
	}
}

// publish adds the local tallies to the shared counters.
func (w *worker) publish() {
	w.c.sent.Add(w.sent)
	w.c.received.Add(w.received)
	w.c.lost.Add(w.lost)
	w.c.stray.Add(w.stray)
	w.sent, w.received, w.lost, w.stray = 0, 0, 0, 0
}

// run fills every slot and then keeps the pipeline full until stop is set.
// It returns within about scanEvery of stop being set.
func (w *worker) run() {
	now := time.Now()
	for i := range w.slots {
		w.arm(i, now)
	}
	lastScan := now
	_ = w.conn.SetReadDeadline(now.Add(scanEvery))
	for !w.stop.Load() {
		w.flush()
		n, err := w.pc.ReadBatch(w.rmsgs, 0)
		now = time.Now()
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, net.ErrClosed):
			w.publish()
			return
		default:
			w.c.recvErrors.Add(1)
		}
		if n > 0 {
			w.receive(n, now)
		}
		if now.Sub(lastScan) >= scanEvery {
			w.expire(now)
			lastScan = now
			_ = w.conn.SetReadDeadline(now.Add(scanEvery))
		}
		w.publish()
	}
}
