package stunserver

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Write queue of a TCP or TLS connection (Conn.WriteTo). The queue holds
// whole messages; one that does not fit is dropped. After a burst the
// writer gives back a buffer larger than tcpQueueKeep, so that an idle
// connection holds little memory.
const (
	tcpQueueLimit = 256 << 10
	tcpQueueKeep  = 16 << 10
)

// UDP socket as a Conn: one per listening socket, shared by every client
// that socket serves.

func (u *udpSocket) Network() string            { return "udp" }
func (u *udpSocket) LocalAddr() netip.AddrPort  { return u.conn.LocalAddr() }
func (u *udpSocket) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }
func (u *udpSocket) KeepOpen(bool)              {}

func (u *udpSocket) WriteTo(b []byte, to netip.AddrPort) error {
	if _, err := u.conn.WriteTo(b, to); err != nil {
		u.st.sendErrors.Add(1)
		return err
	}
	return nil
}

func (u *udpSocket) Detach(func(net.Conn, []byte)) error { return ErrNotStream }

// UDPConn implements UDPSocket.
func (u *udpSocket) UDPConn() *net.UDPConn { return u.conn.UDPConn() }

// tcpConn is a TCP or TLS connection as a Conn. Its reader is the
// serveConn goroutine; its writer goroutine, started by the first
// WriteTo, drains the queue and exits when the connection closes.
type tcpConn struct {
	s             *Server
	raw           net.Conn // the TCP connection: deadlines, Close
	c             net.Conn // what to read and write: raw, or the *tls.Conn
	tr            transport
	local, remote netip.AddrPort
	keepOpen      atomic.Bool

	mu     sync.Mutex // guards the fields below
	closed bool       // serveConn is done or the connection failed
	queue  []byte     // messages WriteTo queued, not yet taken by the writer
	writer bool       // the writer goroutine was started
	wake   chan struct{}
	detach func(net.Conn, []byte)
}

func (c *tcpConn) Network() string            { return c.tr.String() }
func (c *tcpConn) LocalAddr() netip.AddrPort  { return c.local }
func (c *tcpConn) RemoteAddr() netip.AddrPort { return c.remote }

func (c *tcpConn) KeepOpen(on bool) {
	c.keepOpen.Store(on)
	if on {
		c.raw.SetReadDeadline(time.Time{})
	} else {
		c.raw.SetReadDeadline(time.Now().Add(c.s.cfg.TCPIdleTimeout))
	}
}

func (c *tcpConn) WriteTo(b []byte, _ netip.AddrPort) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	if len(c.queue)+len(b) > tcpQueueLimit {
		c.mu.Unlock()
		c.s.queueDrops.Add(1)
		return ErrQueueFull
	}
	c.queue = append(c.queue, b...)
	if !c.writer {
		// serveConn holds its WaitGroup count until it marks the
		// connection closed, so this Add cannot race with Wait at zero.
		c.writer = true
		c.wake = make(chan struct{}, 1)
		c.s.wg.Add(1)
		go c.writeLoop()
	}
	wake := c.wake
	c.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default: // a wakeup is already pending
	}
	return nil
}

func (c *tcpConn) Detach(f func(net.Conn, []byte)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return net.ErrClosed
	case c.writer:
		return errors.New("stunserver: Detach after WriteTo")
	}
	c.detach = f
	return nil
}

// takeDetach returns the function Detach registered, if any, and marks
// the connection closed for WriteTo.
func (c *tcpConn) takeDetach() func(net.Conn, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.detach
	if f != nil {
		c.closed = true
	}
	return f
}

// shutdown marks the connection closed and stops the writer, which drops
// what is still queued.
func (c *tcpConn) shutdown() {
	c.mu.Lock()
	c.closed = true
	c.queue = nil
	wake := c.wake
	c.mu.Unlock()
	if wake != nil {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// writeLoop writes what WriteTo queues, in order, several messages per
// write when they piled up. A failed write closes the connection, which
// ends serveConn too.
func (c *tcpConn) writeLoop() {
	defer c.s.wg.Done()
	var out []byte
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			wake := c.wake
			c.mu.Unlock()
			<-wake
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		out, c.queue = c.queue, out[:0]
		c.mu.Unlock()
		c.raw.SetWriteDeadline(time.Now().Add(c.s.cfg.TCPIdleTimeout))
		if _, err := c.c.Write(out); err != nil {
			c.s.tcpStats.sendErrors.Add(1)
			c.shutdown()
			c.raw.Close()
			return
		}
		if cap(out) > tcpQueueKeep {
			out = nil
		}
	}
}
