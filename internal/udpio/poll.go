package udpio

// Reading many UDP sockets with few goroutines. A server that holds one
// socket per client (a TURN relay holds one per allocation, and RFC 8656
// servers hold tens of thousands) cannot afford a goroutine and a read
// buffer per socket while the socket is idle. A Poller reads a set of
// sockets with one goroutine: on Linux it owns an epoll instance, parks on
// Go's netpoller until that instance has events (an epoll descriptor is
// itself pollable) and drains each ready socket with recvfrom into its
// arena, handing the datagrams of each socket to its handler in batches.
// The slots stay valid across the sockets of one wakeup, until the
// handler's Flush, so that a handler can send what all of them produced
// with one batched system call (the messages of many relays to one
// listening socket go out in one sendmmsg).
// Elsewhere each registered socket has a reader goroutine of its own, and
// the handler is called from them one at a time.

// PollConfig shapes the slots a Poller reads datagrams into. The zero
// value reads datagrams of up to 65,535 bytes with no room around them.
type PollConfig struct {
	// Headroom and Tailroom are the bytes a slot keeps before and after
	// its datagram, for the handler to build a message around it in
	// place.
	Headroom, Tailroom int
	// MaxDatagram is the longest datagram read whole; a longer one is
	// cut. 0 means 65,535.
	MaxDatagram int
}

func (c PollConfig) withDefaults() PollConfig {
	if c.MaxDatagram <= 0 {
		c.MaxDatagram = 65535
	}
	c.Headroom, c.Tailroom = max(c.Headroom, 0), max(c.Tailroom, 0)
	return c
}

// slotRoom is the arena room one datagram is read into.
func (c PollConfig) slotRoom() int { return c.Headroom + c.MaxDatagram + c.Tailroom }

// PollHandler handles what a Poller reads from the sockets registered
// with a value of type T. Its methods are called from one goroutine at a
// time (the Poller's, or on Linux a caller of PollNow), never
// concurrently, so the handler may keep scratch state without locks.
type PollHandler[T any] interface {
	// Received handles datagrams read in a row from the socket registered
	// with v. Each message's Buf is the datagram's slot: the datagram is
	// Buf[Headroom:Headroom+N], with Tailroom bytes after it, and the
	// handler may overwrite the whole slot (to build a message around the
	// datagram in place). Addr is the datagram's source, unmapped. ms is
	// the Poller's and is reused once Received returns; the slots stay
	// valid until the next Flush.
	Received(v T, ms []Message)
	// Flush is called when the Poller is about to reuse the slots it
	// handed over (after the ready sockets of one wakeup, or when its
	// arena is full): the handler sends what it built in them.
	Flush()
	// ReadFailed reports a read error other than "no more datagrams" on
	// the socket of v; the Poller goes on with the next ready socket.
	ReadFailed(v T, err error)
}

// maxDrain bounds the datagrams read from one socket per readiness event,
// so that one busy socket cannot starve the others of its Poller.
const maxDrain = 64

// manyReady is how many sockets one epoll_wait must report for the Poller
// to read one datagram from each instead of draining each: with many
// sockets ready at modest rates (the shape of TURN traffic) a socket
// usually holds one datagram, and draining it would cost a second
// recvfrom that finds nothing. epoll is level-triggered, so a socket that
// holds more is reported again by the next epoll_wait, which serves all
// the ready sockets at once.
const manyReady = 4
