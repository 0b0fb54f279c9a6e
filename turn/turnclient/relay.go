package turnclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn"
)

var _ net.PacketConn = (*Relay)(nil)

// Relay is a TURN allocation as a net.PacketConn: WriteTo sends a datagram
// to a peer through the server, ReadFrom returns what peers sent to the
// relayed address. LocalAddr is the relayed address (the IPv4 one of a
// dual allocation; Relayed lists all).
//
// A Relay is safe for concurrent use. It owns its socket or connection to
// the server and its goroutines (the reader, the refresher and, over UDP,
// the writer of the data queue); Close stops them and waits for them. Over
// UDP, WriteTo queues the packet for the server and the writer sends what
// piles up in one system call (udpio.Queue); WriteTo waits while the queue
// is full. ReadFrom copies into the caller's buffer; the
// Relay keeps no reference to buffers passed to WriteTo.
//
// The zero value is not usable: use Allocate.
type Relay struct {
	// Set by Allocate, then only read.
	cfg    Config
	log    *slog.Logger
	client *stunclient.Client
	udp    *net.UDPConn // UDP transport
	stream net.Conn     // TCP or TLS transport
	// queue carries the data packets (ChannelData, Send indications) to
	// the server over UDP, sent in batches by a goroutine of the Relay;
	// flushed is closed when it has sent its last ones after Close.
	queue   *udpio.Queue
	flushed chan struct{}
	host    string  // the server's host name, for TLS on data connections
	granted granted // what the Allocate response granted

	wmu    sync.Mutex // serialises writes to stream
	server atomic.Pointer[netip.AddrPort]

	// TCP allocations (RFC 6062): ConnectionAttempts for Accept (nil
	// otherwise), and the data connections of ConnectionBind requests.
	attempts chan attempt
	binds    dataConns

	mu   sync.Mutex // guards core
	core *core

	in      chan packet
	readDL  netx.Deadline
	writeDL netx.Deadline
	kick    chan struct{} // wakes the refresher; capacity 1

	life lifecycle // Close, the loss of the allocation, the goroutines

	st stats
}

// packet is a datagram from a peer, queued for ReadFrom in a pooled
// buffer.
// granted is what the server's Allocate response granted. RFC 8656,
// Section 7.3.
type granted struct {
	relayed  []netip.AddrPort // XOR-RELAYED-ADDRESS: one, or two for Dual, IPv4 first
	mapped   netip.AddrPort   // XOR-MAPPED-ADDRESS, or the zero value
	lifetime time.Duration    // LIFETIME
}

type packet struct {
	buf  *[]byte // from netx.CopyBuf
	from netip.AddrPort
}

// copyTo copies the datagram into p, truncating it, and frees its buffer.
func (pkt packet) copyTo(p []byte) int {
	n := copy(p, *pkt.buf)
	netx.FreeBuf(pkt.buf)
	return n
}

type stats struct {
	sentIndications, sentChannelData     atomic.Uint64
	recvIndications, recvChannelData     atomic.Uint64
	malformed, unexpected, foreign, drop atomic.Uint64
	unknownChannel                       atomic.Uint64
	attempts                             atomic.Uint64
}

// Stats counts what a Relay sent and received and what it dropped.
type Stats struct {
	SentIndications uint64 // datagrams sent in Send indications
	SentChannelData uint64 // datagrams sent as ChannelData
	RecvIndications uint64 // datagrams received in Data indications
	RecvChannelData uint64 // datagrams received as ChannelData
	Malformed       uint64 // packets from the server that do not parse
	Unexpected      uint64 // well-formed packets the client has no use for
	Foreign         uint64 // packets from other sources than the server (UDP)
	UnknownChannel  uint64 // ChannelData on a channel never bound
	Dropped         uint64 // datagrams dropped because ReadFrom lagged (TCPRelay: connection attempts because Accept lagged)
	Attempts        uint64 // TCPRelay: ConnectionAttempt indications received (RFC 6062, Section 4.5)
}

// Stats returns the Relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{
		SentIndications: r.st.sentIndications.Load(),
		SentChannelData: r.st.sentChannelData.Load(),
		RecvIndications: r.st.recvIndications.Load(),
		RecvChannelData: r.st.recvChannelData.Load(),
		Malformed:       r.st.malformed.Load(),
		Unexpected:      r.st.unexpected.Load(),
		Foreign:         r.st.foreign.Load(),
		UnknownChannel:  r.st.unknownChannel.Load(),
		Dropped:         r.st.drop.Load(),
		Attempts:        r.st.attempts.Load(),
	}
}

// LocalAddr returns the relayed transport address (a *net.UDPAddr).
func (r *Relay) LocalAddr() net.Addr { return netx.UDPAddr(r.granted.relayed[0]) }

// Relayed returns the relayed addresses: one, or two for Dual.
func (r *Relay) Relayed() []netip.AddrPort {
	return append([]netip.AddrPort(nil), r.granted.relayed...)
}

// Mapped returns the server-reflexive address the server reported
// (XOR-MAPPED-ADDRESS in the Allocate response), or the zero value.
func (r *Relay) Mapped() netip.AddrPort { return r.granted.mapped }

// Server returns the server's address actually used (after an
// ALTERNATE-SERVER redirection, the alternate).
func (r *Relay) Server() netip.AddrPort { return *r.server.Load() }

// Lifetime returns the lifetime granted by the Allocate response.
func (r *Relay) Lifetime() time.Duration { return r.granted.lifetime }

// Channel returns the channel number bound to peer, or 0 if packets to
// peer still go in Send indications.
func (r *Relay) Channel(peer netip.AddrPort) uint16 {
	peer = netx.Unmap(peer)
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.core.peers[peer]; b != nil && b.bound {
		return b.num
	}
	return 0
}

// SetDeadline sets the read and write deadlines.
func (r *Relay) SetDeadline(t time.Time) error {
	r.readDL.Set(t)
	r.writeDL.Set(t)
	return nil
}

// SetReadDeadline sets the deadline of ReadFrom, also for a call already
// waiting.
func (r *Relay) SetReadDeadline(t time.Time) error { r.readDL.Set(t); return nil }

// SetWriteDeadline sets the deadline of WriteTo, which bounds the
// CreatePermission a write to a new peer waits for.
func (r *Relay) SetWriteDeadline(t time.Time) error { r.writeDL.Set(t); return nil }

func (r *Relay) opError(op string, addr net.Addr, err error) error {
	return netx.OpError(op, "turn", r.LocalAddr(), addr, err)
}

// ReadFrom reads the next datagram a peer sent to the relayed address. A
// datagram longer than p is truncated. Errors are *net.OpError wrapping
// os.ErrDeadlineExceeded, net.ErrClosed, or ErrAllocationLost.
func (r *Relay) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := r.ReadFromUDPAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, netx.UDPAddr(from), nil
}

// ReadFromUDPAddrPort is ReadFrom with the peer's address as a
// netip.AddrPort (unmapped), like net.UDPConn's: it allocates nothing.
func (r *Relay) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	if r.life.closed() {
		return 0, netip.AddrPort{}, r.opError("read", nil, net.ErrClosed)
	}
	// Datagrams already queued are delivered first.
	select {
	case pkt := <-r.in:
		return pkt.copyTo(p), pkt.from, nil
	default:
	}
	select {
	case pkt := <-r.in:
		return pkt.copyTo(p), pkt.from, nil
	case <-r.life.closing:
		return 0, netip.AddrPort{}, r.opError("read", nil, net.ErrClosed)
	case <-r.life.dead:
		return 0, netip.AddrPort{}, r.opError("read", nil, r.life.deadErr)
	case <-r.readDL.Done():
		return 0, netip.AddrPort{}, r.opError("read", nil, os.ErrDeadlineExceeded)
	}
}

// WriteTo sends p to the peer addr (a *net.UDPAddr, or any net.Addr whose
// String is IP:port) through the server. The first write to a peer's IP
// address waits for a CreatePermission (RFC 8656, Section 9); a refused
// one (403) fails that write with an error wrapping ErrForbidden. The
// first packets go in Send indications (Section 10); after Config.BindAfter
// packets the Relay binds a channel in the background and then sends
// ChannelData (Sections 11-12). Errors are *net.OpError.
func (r *Relay) WriteTo(p []byte, addr net.Addr) (int, error) {
	peer, err := peerOf(addr)
	if err != nil {
		return 0, r.opError("write", addr, err)
	}
	return r.writeTo(p, peer, addr)
}

// WriteToUDPAddrPort is WriteTo with the peer's address as a
// netip.AddrPort, like net.UDPConn's: once the peer has its permission, it
// allocates nothing.
func (r *Relay) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	peer := netx.Unmap(addr)
	if !peer.IsValid() || peer.Port() == 0 {
		return 0, r.opError("write", netx.UDPAddr(addr), fmt.Errorf("turn: invalid peer address %v", addr))
	}
	return r.writeTo(p, peer, nil)
}

// writeTo sends p to peer; addr is the address the caller gave, for
// errors, or nil for peer's.
func (r *Relay) writeTo(p []byte, peer netip.AddrPort, addr net.Addr) (int, error) {
	fail := func(err error) (int, error) {
		if addr == nil {
			addr = netx.UDPAddr(peer)
		}
		return 0, r.opError("write", addr, err)
	}
	switch {
	case r.life.closed():
		return fail(net.ErrClosed)
	case r.life.lost() != nil:
		return fail(r.life.lost())
	case r.writeDL.Expired():
		return fail(os.ErrDeadlineExceeded)
	case len(p) > turn.MaxChannelDataLength:
		return fail(fmt.Errorf("turn: datagram of %d bytes is too long", len(p)))
	}
	now := time.Now()
	r.mu.Lock()
	has := r.core.hasPermission(peer.Addr(), now)
	r.mu.Unlock()
	if !has {
		ctx, cancel := context.WithCancel(context.Background())
		if dl := r.writeDL.Time(); !dl.IsZero() {
			ctx, cancel = context.WithDeadline(context.Background(), dl)
		}
		err := r.createPermission(ctx, peer.Addr())
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
			}
			return fail(err)
		}
		now = time.Now()
	}
	r.mu.Lock()
	ch, kick := r.core.route(peer, now)
	r.mu.Unlock()
	if kick {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if ch != 0 {
		b = turn.AppendChannelData(b, ch, p, r.stream != nil)
		r.st.sentChannelData.Add(1)
	} else {
		b = turn.AppendSendIndication(b, stun.NewTransactionID(), peer, p)
		r.st.sentIndications.Add(1)
	}
	var err error
	if r.queue != nil {
		err = r.queueSend(b, r.Server())
	} else {
		err = r.send(b, r.Server())
	}
	*bp = b
	bufPool.Put(bp)
	if err != nil {
		return fail(err)
	}
	return len(p), nil
}

// queueSend queues a data packet for the server on the UDP queue, waiting
// while it is full until the queue's goroutine takes it, the Relay closes
// or is lost, or the write deadline passes.
func (r *Relay) queueSend(b []byte, to netip.AddrPort) error {
	for !r.queue.Put(b, to) {
		select {
		case <-r.queue.Room():
		case <-r.life.closing:
			return net.ErrClosed
		case <-r.life.dead:
			return r.life.deadErr
		case <-r.writeDL.Done():
			return os.ErrDeadlineExceeded
		}
	}
	return nil
}

// socketBuffer is the receive and send buffer asked for on the UDP socket
// to the server.
const socketBuffer = 4 << 20

// queuedWrites bounds the data packets queued for the server over UDP;
// a write waits beyond it, as a write to a full socket buffer would.
const queuedWrites = 256

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1600); return &b }}

// send writes one message to the server.
func (r *Relay) send(b []byte, to netip.AddrPort) error {
	if r.udp != nil {
		_, err := r.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.stream.Write(b)
	return err
}

func peerOf(addr net.Addr) (netip.AddrPort, error) {
	if addr == nil {
		return netip.AddrPort{}, errors.New("turn: no peer address")
	}
	ap, err := netx.ParseAddr(addr)
	if err != nil {
		return ap, fmt.Errorf("turn: peer %w", err)
	}
	if !ap.IsValid() || ap.Port() == 0 {
		return ap, fmt.Errorf("turn: invalid peer address %v", addr)
	}
	return ap, nil
}

// fail marks the relay lost with err (the first reason wins).
func (r *Relay) fail(err error) { r.life.lose(err) }

// Close releases the allocation: it stops the refresher, sends a Refresh
// with LIFETIME 0 (best effort, waiting at most a second), closes the
// connection to the server and waits for the Relay's goroutines. Blocked
// ReadFrom and WriteTo calls return net.ErrClosed. Calling Close again
// does nothing and returns the first call's result.
func (r *Relay) Close() error { return r.life.close(r.release) }

// release is Close's work, run once.
func (r *Relay) release() error {
	if r.udp != nil {
		// closing is closed: the data queue sends what it holds and
		// stops, before the Refresh below deletes the allocation that
		// would relay it.
		<-r.flushed
	}
	r.life.stopRefresher()
	if r.life.lost() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.client.Do(ctx, r.Server(), stun.MethodRefresh, func(b []byte, _ stun.TransactionID) []byte {
			return turn.AppendDelete(b)
		})
		cancel()
		if err != nil {
			r.log.Debug("turn: deleting the allocation failed", "server", r.Server(), "err", err)
		}
	}
	r.client.Close()
	var err error
	if r.udp != nil {
		err = r.udp.Close()
	} else {
		err = r.stream.Close()
	}
	r.life.wg.Wait()
	r.readDL.Stop()
	r.writeDL.Stop()
	return err
}
