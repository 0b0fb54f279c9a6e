package udpio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
)

// Options tunes the sockets ListenGroup opens. The zero value is usable:
// one datagram per system call and the kernel's default buffer sizes.
type Options struct {
	// Batch selects recvmmsg/sendmmsg where the platform has them (Linux).
	// Elsewhere it is ignored and every call moves one datagram.
	Batch bool
	// ReadBuffer and WriteBuffer set SO_RCVBUF and SO_SNDBUF; 0 keeps the
	// kernel default. The kernel may cap them (net.core.rmem_max); that is
	// not an error.
	ReadBuffer, WriteBuffer int
}

// Message is one datagram of a batch.
//
// For ReadBatch, Buf is the caller's buffer to fill (its length is the
// most that is read, and must not be zero); ReadBatch sets N, Addr and
// Truncated. For WriteBatch, Buf is the datagram and Addr its destination.
// The Conn keeps no reference to Buf after the call returns.
type Message struct {
	Buf       []byte
	N         int
	Addr      netip.AddrPort
	Truncated bool // the datagram was longer than Buf and was cut
}

// ReusePortSupported reports whether ListenGroup can bind more than one
// socket to an address on this platform.
const ReusePortSupported = reusePortSupported

// ErrAddrInUse reports that another socket already holds the address
// ListenGroup was asked to bind.
var ErrAddrInUse = errors.New("udpio: address already in use")

// Conn is one UDP socket. ReadBatch must not be called from two
// goroutines at once, nor WriteBatch; one reader and one batch writer may
// run concurrently with each other and with any number of WriteTo calls.
// Close may be called at any time and unblocks a pending read with an error
// that matches net.ErrClosed.
type Conn struct {
	c      *net.UDPConn
	local  netip.AddrPort
	family int // syscall.AF_INET or syscall.AF_INET6
	mm     *mmsgConn
}

// ListenGroup binds n UDP sockets to addr. When n > 1 they share the
// address with SO_REUSEPORT and the kernel spreads incoming flows across
// them by a hash of the 4-tuple. With port 0 the first socket picks a free
// port and the others join it.
//
// Before a group binds a fixed port, a probe socket without SO_REUSEPORT
// checks that no other socket holds the address, so that a second server
// started by mistake on the same port fails instead of silently sharing
// the traffic; this returns an error wrapping ErrAddrInUse.
//
// An IPv4 address gives AF_INET sockets; an IPv6 one AF_INET6 sockets, and
// the unspecified address [::] a dual-stack socket.
func ListenGroup(addr netip.AddrPort, n int, opt Options) ([]*Conn, error) {
	if n < 1 {
		return nil, fmt.Errorf("udpio: socket count %d, need at least 1", n)
	}
	if n > 1 && !reusePortSupported {
		return nil, errors.New("udpio: SO_REUSEPORT is not supported on this platform")
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().IsValid() {
		return nil, errors.New("udpio: invalid address")
	}
	if n > 1 && addr.Port() != 0 {
		probe, err := listen(addr, false, opt)
		if err != nil {
			return nil, err
		}
		probe.Close()
	}
	conns := make([]*Conn, 0, n)
	for len(conns) < n {
		c, err := listen(addr, n > 1, opt)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, c)
		addr = c.local // later sockets join the port the first one got
	}
	return conns, nil
}

func listen(addr netip.AddrPort, reuse bool, opt Options) (*Conn, error) {
	network, family := "udp6", syscall.AF_INET6
	switch {
	case addr.Addr().Is4():
		network, family = "udp4", syscall.AF_INET
	case addr.Addr().IsUnspecified():
		network = "udp" // dual stack
	}
	lc := net.ListenConfig{}
	if reuse {
		lc.Control = ControlReusePort
	}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w: %w", ErrAddrInUse, err)
		}
		return nil, fmt.Errorf("udpio: %w", err)
	}
	uc := pc.(*net.UDPConn)
	SetBuffers(uc, opt.ReadBuffer, opt.WriteBuffer)
	la := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	c := &Conn{
		c:      uc,
		local:  netip.AddrPortFrom(la.Addr().Unmap(), la.Port()),
		family: family,
	}
	if opt.Batch {
		mm, err := newMmsgConn(uc, family)
		if err != nil {
			uc.Close()
			return nil, err
		}
		c.mm = mm // nil where batching is unsupported
	}
	return c, nil
}

// Wrap returns a Conn over c, a socket opened elsewhere (an IPv4 one when
// v6 is false), with recvmmsg/sendmmsg where the platform has them. The
// Conn and c are the same socket: closing either closes both.
func Wrap(c *net.UDPConn, v6 bool) (*Conn, error) {
	family := syscall.AF_INET
	if v6 {
		family = syscall.AF_INET6
	}
	la, _ := c.LocalAddr().(*net.UDPAddr)
	if la == nil {
		return nil, errors.New("udpio: Wrap: the socket has no UDP address")
	}
	ap := la.AddrPort()
	mm, err := newMmsgConn(c, family)
	if err != nil {
		return nil, fmt.Errorf("udpio: %w", err)
	}
	return &Conn{c: c, local: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), family: family, mm: mm}, nil
}

// LocalAddr returns the address the socket is bound to, with the port the
// kernel chose.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Batched reports whether ReadBatch and WriteBatch move several datagrams
// per system call.
func (c *Conn) Batched() bool { return c.mm != nil }

// UDPConn returns the underlying socket, for options this package does not
// set. Reading from it directly competes with ReadBatch.
func (c *Conn) UDPConn() *net.UDPConn { return c.c }

// Close closes the socket. A pending ReadBatch returns an error matching
// net.ErrClosed.
func (c *Conn) Close() error { return c.c.Close() }

// ReadBatch waits for at least one datagram and fills up to len(ms)
// messages, returning how many it filled. Without batching it fills one.
// Errors matching net.ErrClosed mean the Conn was closed.
func (c *Conn) ReadBatch(ms []Message) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	for i := range ms {
		if len(ms[i].Buf) == 0 {
			return 0, errors.New("udpio: ReadBatch with an empty buffer")
		}
	}
	if c.mm != nil {
		return c.mm.read(ms)
	}
	m := &ms[0]
	n, _, flags, from, err := c.c.ReadMsgUDPAddrPort(m.Buf, nil)
	if err != nil {
		return 0, err
	}
	m.N = n
	m.Addr = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	m.Truncated = flags&msgTrunc != 0
	return 1, nil
}

// WriteBatch sends every message in ms. A message the kernel refuses (for
// example an unreachable destination) is skipped and the rest are still
// sent. It returns how many were sent and the first error met; after an
// error matching net.ErrClosed it stops. It sets N of each message to the
// bytes sent, -1 for one not sent.
func (c *Conn) WriteBatch(ms []Message) (int, error) {
	if c.mm != nil {
		return c.mm.write(ms)
	}
	return writeEach(c.c, ms)
}

// writeEach sends ms one datagram per system call, as WriteBatch does.
func writeEach(c *net.UDPConn, ms []Message) (int, error) {
	sent := 0
	var first error
	for i := range ms {
		ms[i].N = -1
	}
	for i := range ms {
		a := ms[i].Addr
		n, err := c.WriteToUDPAddrPort(ms[i].Buf, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
		if err != nil {
			if first == nil {
				first = err
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
			continue
		}
		ms[i].N = n
		sent++
	}
	return sent, first
}

// SetBuffers sets SO_RCVBUF and SO_SNDBUF of c to read and write bytes; 0
// leaves one unchanged. It is best effort, as Options.ReadBuffer.
func SetBuffers(c *net.UDPConn, read, write int) { setBuffers(c, read, write) }

// Target is a UDP socket opened elsewhere that a Sender writes to. It is
// safe for concurrent use; it does not own the socket.
type Target struct {
	c   *net.UDPConn
	rc  syscall.RawConn
	v6  bool        // an AF_INET6 socket
	gso atomic.Bool // Senders may use UDP GSO on it
	// gsoMax is the largest datagram that Senders group into a GSO send
	// through it: one that fits an Ethernet frame, lowered when a route
	// with a smaller MTU refuses a segment (gso_linux.go).
	gsoMax atomic.Int32
}

// NewTarget wraps c, an IPv4 ("udp4") socket when v6 is false, an IPv6
// or dual-stack one otherwise.
func NewTarget(c *net.UDPConn, v6 bool) (*Target, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpio: %w", err)
	}
	t := &Target{c: c, rc: rc, v6: v6}
	t.gso.Store(gsoAvailable())
	t.gsoMax.Store(maxSegmentSize4)
	if v6 {
		t.gsoMax.Store(maxSegmentSize6)
	}
	return t, nil
}

// GSO reports whether Senders still send runs of equal-size datagrams
// through t with UDP GSO: the kernel has it, and has not refused it on
// this socket.
func (t *Target) GSO() bool { return t.gso.Load() }

// Send sends every message of ms through t with as few system calls as
// the platform allows, as WriteBatch does, and sets N of each message to
// the bytes sent, -1 for one not sent. On Linux that is sendmmsg, and
// where the kernel has UDP GSO (4.18 and later), each run of consecutive
// messages to one address with one size (the last may be shorter) goes
// out as one GSO datagram that the kernel cuts back into the same
// datagrams; a GSO send the kernel refuses turns GSO off for t (see
// GSODisabled) and the messages go out without it. A Sender is scratch:
// it is not safe for concurrent use, and one Sender may serve any number
// of Targets. Send allocates nothing.
func (s *Sender) Send(t *Target, ms []Message) (int, error) { return s.send(t, ms) }

// SendSpread sends each message ms[i] through its own Target ts[i] (ts
// and ms have the same length) and sets N of each message as Send does;
// it returns how many were sent. It is for datagrams of many sockets at
// once, one or two each, as a TURN server has for its relays when many
// allocations carry modest rates: on Linux with io_uring (5.4 and later,
// where not forbidden) up to 64 of them go out with one system call,
// where Send would make one sendmmsg per socket; a datagram that its
// socket cannot take at once (a full send buffer) is then not sent,
// where Send would wait. Without io_uring each run of consecutive
// messages through one Target goes out with one Send. A socket closed
// meanwhile is skipped. It allocates nothing.
func (s *Sender) SendSpread(ts []*Target, ms []Message) int { return s.sendSpread(ts, ms) }

// sendRuns is SendSpread with one Send per run of consecutive messages
// through one Target.
func sendRuns(s *Sender, ts []*Target, ms []Message) int {
	sent := 0
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ts[j] == ts[i] {
			j++
		}
		n, _ := s.send(ts[i], ms[i:j])
		sent += n
		i = j
	}
	return sent
}

// GSODisabled returns how many times a Send of s turned GSO off for its
// Target because the kernel refused it.
func (s *Sender) GSODisabled() uint64 { return s.gsoDisabled }

// WriteTo sends one datagram to addr. It is safe to call from any
// goroutine.
func (c *Conn) WriteTo(b []byte, addr netip.AddrPort) (int, error) {
	return c.c.WriteToUDPAddrPort(b, netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()))
}
