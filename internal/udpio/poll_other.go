//go:build !linux

package udpio

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// Poller reads the UDP sockets registered with it and hands their
// datagrams to its handler. Here every registered socket has a reader
// goroutine and a read buffer of its own; the handler is called under the
// Poller's lock, one batch (one datagram) at a time. Add, Remove and Close
// are safe for concurrent use.
type Poller[T any] struct {
	h    PollHandler[T]
	cfg  PollConfig
	hmu  sync.Mutex // serialises handler calls
	wg   sync.WaitGroup
	done chan struct{}
	once sync.Once
}

// Registration is a socket's membership in a Poller, for Remove. Its
// zero value is registered nowhere.
type Registration struct {
	c       *net.UDPConn
	removed *atomic.Bool
}

// NewPoller returns a Poller that hands what it reads to h.
func NewPoller[T any](cfg PollConfig, h PollHandler[T]) (*Poller[T], error) {
	return &Poller[T]{h: h, cfg: cfg.withDefaults(), done: make(chan struct{})}, nil
}

// Add registers c and starts its reader goroutine, which ends at Remove
// or when c closes.
func (p *Poller[T]) Add(c *net.UDPConn, v T) (Registration, error) {
	r := Registration{c: c, removed: new(atomic.Bool)}
	p.wg.Add(1)
	go p.read(c, v, r.removed)
	return r, nil
}

func (p *Poller[T]) read(c *net.UDPConn, v T, removed *atomic.Bool) {
	defer p.wg.Done()
	cfg := &p.cfg
	slot := make([]byte, cfg.slotRoom())
	ms := make([]Message, 1)
	for {
		n, from, err := c.ReadFromUDPAddrPort(slot[cfg.Headroom : cfg.Headroom+cfg.MaxDatagram])
		if removed.Load() {
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.hmu.Lock()
			p.h.ReadFailed(v, err)
			p.hmu.Unlock()
			continue
		}
		ms[0] = Message{Buf: slot[:cfg.Headroom+n+cfg.Tailroom], N: n, Addr: netx.Unmap(from)}
		p.hmu.Lock()
		p.h.Received(v, ms)
		p.h.Flush()
		p.hmu.Unlock()
	}
}

// Remove unregisters a socket and ends its reader goroutine; a zero
// Registration is ignored.
func (p *Poller[T]) Remove(r Registration) {
	if r.c == nil {
		return
	}
	r.removed.Store(true)
	r.c.SetReadDeadline(time.Unix(1, 0)) // wakes the reader
}

// Run waits until Close, then for the reader goroutines of the sockets
// still registered, which end when their sockets close or are removed.
func (p *Poller[T]) Run() error {
	<-p.done
	p.wg.Wait()
	return nil
}

// Close ends Run. It may be called more than once.
func (p *Poller[T]) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
