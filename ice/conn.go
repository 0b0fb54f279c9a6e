package ice

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// ErrNotData is wrapped by Conn.Write for a datagram the peer could not
// tell from STUN: empty, or starting with a byte 0 to 3. RFC 7983, Section 7.
var ErrNotData = errors.New("ice: application data must be non-empty and not start with a byte 0-3")

// Conn is the selected path of an Agent as a net.Conn: each Write is one
// UDP datagram from the selected pair's local base to its remote
// candidate. Read returns one datagram, truncated to the buffer like a UDP
// socket's Read, that came from one of the peer's candidates: signalled,
// trickled or peer-reflexive, as RFC 8445, Section 12.2 asks, so that
// data sent on a pair the peer has just switched to is not lost. Datagrams
// from any other address are dropped.
// The sockets are shared with STUN, demultiplexed per RFC 7983. When the
// controlling peer nominates another pair (an upgrade from a relay, say),
// the Conn follows it.
//
// Conn is safe for concurrent use. Close closes the whole Agent and waits
// for its goroutines; after it every method returns an error wrapping
// net.ErrClosed in a *net.OpError. Deadlines expire with
// os.ErrDeadlineExceeded, also in a *net.OpError. Once consent is lost
// (RFC 7675), Read and Write return ErrConsentLost in a *net.OpError. A
// Write on a relayed path may block while the TURN client creates the
// permission for the peer (RFC 8656, Section 9). On a host socket, Write
// queues a copy of the datagram, which the socket's writer sends with
// others queued meanwhile in one system call (udpio.Queue); it blocks
// while the queue is full, and a datagram the kernel then refuses is
// counted in AgentStats.Dropped, as a lost datagram would be.
type Conn struct {
	a      *Agent
	rd, wd netx.Deadline
}

var _ net.Conn = (*Conn)(nil)

func newConn(a *Agent) *Conn { return &Conn{a: a} }

// Read reads one datagram of the selected path into b.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		sel := c.a.selectedPair()
		rd := c.rd.Done()
		select {
		case <-c.a.life.done:
			return 0, c.a.opErr("read", sel, net.ErrClosed)
		case <-c.a.life.lost:
			return 0, c.a.opErr("read", sel, c.a.stopped())
		case <-rd:
			return 0, c.a.opErr("read", sel, os.ErrDeadlineExceeded)
		default:
		}
		select {
		case <-c.a.life.done:
			return 0, c.a.opErr("read", sel, net.ErrClosed)
		case <-c.a.life.lost:
			return 0, c.a.opErr("read", sel, c.a.stopped())
		case <-rd:
			return 0, c.a.opErr("read", sel, os.ErrDeadlineExceeded)
		case p := <-c.a.ch.dataIn:
			ok := c.a.fromPeer(p)
			n := copy(b, p.b)
			netx.FreeBuf(p.buf)
			if !ok {
				c.a.counters.malformed.Add(1)
				continue
			}
			return n, nil
		}
	}
}

// Write sends b as one datagram on the selected path.
func (c *Conn) Write(b []byte) (int, error) {
	sp := c.a.path.Load()
	sel := &sp.pair
	select {
	case <-c.a.life.done:
		return 0, c.a.opErr("write", sel, net.ErrClosed)
	case <-c.a.life.lost:
		return 0, c.a.opErr("write", sel, c.a.stopped())
	case <-c.wd.Done():
		return 0, c.a.opErr("write", sel, os.ErrDeadlineExceeded)
	default:
	}
	if len(b) == 0 || b[0] <= 3 {
		return 0, c.a.opErr("write", sel, ErrNotData)
	}
	s := sp.s
	if s == nil {
		return 0, c.a.opErr("write", sel, net.ErrClosed)
	}
	n := len(b)
	var err error
	if s.queue != nil {
		err = c.a.queueWrite(s, c.wd.Done(), b, sel.Remote.Addr)
	} else {
		err = s.send(b, sel.Remote.Addr)
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			err = net.ErrClosed
		}
		return 0, c.a.opErr("write", sel, err)
	}
	c.a.lastWrite.Store(time.Now().UnixNano())
	return n, nil
}

// Close closes the Agent. It is idempotent.
func (c *Conn) Close() error {
	c.rd.Set(time.Time{})
	c.wd.Set(time.Time{})
	return c.a.Close()
}

// LocalAddr returns the address of the selected pair's local candidate.
func (c *Conn) LocalAddr() net.Addr {
	return netx.UDPAddr(c.a.selectedPair().Local.Addr)
}

// RemoteAddr returns the address of the selected pair's remote candidate.
func (c *Conn) RemoteAddr() net.Addr {
	return netx.UDPAddr(c.a.selectedPair().Remote.Addr)
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.Set(t)
	c.wd.Set(t)
	return nil
}

// SetReadDeadline sets the read deadline; a zero t clears it. It also
// wakes a blocked Read when t is in the past.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetWriteDeadline sets the write deadline; a zero t clears it. A UDP
// write does not block, so only a deadline already past fails it.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wd.Set(t); return nil }

// stopped returns why the Conn no longer works: net.ErrClosed once the
// Agent is closed, else ErrConsentLost.
func (a *Agent) stopped() error {
	if netx.Closed(a.life.done) {
		return net.ErrClosed
	}
	return ErrConsentLost
}

// peerSet is the addresses of the peer's candidates that data is accepted
// from: those of the current session and, while an ICE restart has not
// selected a pair, of the session it replaces. The loop builds a new one
// when they change and never modifies a published one.
type peerSet struct {
	cur, prev   *session
	nCur, nPrev int
	addrs       map[netip.AddrPort]struct{}
}

// publishPeers publishes the remote candidates of s (and of the session
// it replaces, while it runs) for Conn.Read. Called by the loop only.
func (a *Agent) publishPeers(s *session) {
	var prev *session
	if !s.reported {
		prev = s.prev
	}
	nPrev := 0
	if prev != nil {
		nPrev = len(prev.checker.remotes)
	}
	old := a.peers.Load()
	if old != nil && old.cur == s && old.prev == prev && old.nCur == len(s.checker.remotes) && old.nPrev == nPrev {
		return
	}
	ps := &peerSet{cur: s, prev: prev, nCur: len(s.checker.remotes), nPrev: nPrev,
		addrs: make(map[netip.AddrPort]struct{}, len(s.checker.remotes)+nPrev)}
	for _, r := range s.checker.remotes {
		ps.addrs[r.Addr] = struct{}{}
	}
	if prev != nil {
		for _, r := range prev.checker.remotes {
			ps.addrs[r.Addr] = struct{}{}
		}
	}
	a.peers.Store(ps)
}

// fromPeer reports whether p came from the selected pair's remote
// candidate or from another candidate of the peer.
func (a *Agent) fromPeer(p rxPacket) bool {
	if sel := a.selectedPair(); sel != nil && p.s.addr == sel.Local.BaseAddr() && p.from == sel.Remote.Addr {
		return true
	}
	ps := a.peers.Load()
	if ps == nil {
		return false
	}
	_, ok := ps.addrs[p.from]
	return ok
}
