package ice

import (
	"net"
	"net/netip"
	"os"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
)

// maxQueuedWrites bounds the datagrams that Conn.Write has queued on one
// host socket and its writer has not sent yet; Write blocks beyond it, as
// a write to a full socket buffer would.
const maxQueuedWrites = 256

// queueWrite queues b for to on s's write queue (udpio.Queue: its writer,
// writeQueueLoop, sends what piles up in one system call). It blocks while
// the queue is full, until the writer takes it, the deadline wd passes
// (os.ErrDeadlineExceeded) or the Agent stops (net.ErrClosed, or
// ErrConsentLost once consent is lost).
func (a *Agent) queueWrite(s *sock, wd <-chan struct{}, b []byte, to netip.AddrPort) error {
	for !s.queue.Put(b, to) {
		select {
		case <-s.queue.Room():
		case <-wd:
			return os.ErrDeadlineExceeded
		case <-a.life.done:
			return net.ErrClosed
		case <-a.life.lost:
			return a.stopped()
		case <-s.stop:
			return net.ErrClosed
		}
	}
	return nil
}

// writeQueueLoop runs the write queue of host socket s until s is closed
// (Close closes every socket), which waits for it to send what is queued.
func (a *Agent) writeQueueLoop(s *sock) {
	defer close(s.flushed)
	s.queue.Run(s.stop)
}

// queueDrops sums the datagrams that the kernel refused from the write
// queues of the open host sockets.
func (a *Agent) queueDrops() uint64 {
	var n uint64
	for _, s := range a.socks.filter(func(s *sock) bool { return s.queue != nil }) {
		n += s.queue.Dropped()
	}
	return n
}

// newWriteQueue returns the write queue of a host socket.
func newWriteQueue(conn *net.UDPConn, v6 bool) (*udpio.Queue, error) {
	return udpio.NewQueue(conn, v6, maxQueuedWrites)
}
