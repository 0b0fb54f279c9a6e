package turnserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/turn"
)

// relay is one relayed transport address of an allocation: a UDP socket.
// start hands it to the server's readers (relay_read.go);
// close stops reading it and closes it.
type relay struct {
	a      *allocation
	family turn.Family
	conn   *net.UDPConn
	tgt    *udpio.Target  // conn for batched sends; nil if unavailable
	local  netip.AddrPort // the bound address
	public netip.AddrPort // the advertised address (External IP, or local)
	rd     relayReader    // the platform's read state
}

// close stops reading the socket, closes it and returns the port to the
// pool.
func (r *relay) close() {
	r.stopReading()
	r.conn.Close()
	s := r.a.s
	s.ports[familyIndex(r.family)].release(r.local.Port())
	s.fds.release(1)
}

// send relays data to peer, counting the outcome in f. A failed send (no
// route, EPERM from a firewall, a full buffer) drops this packet only: it
// never ends the allocation (RFC 8656 leaves it open; coturn deletes the
// allocation, which one unreachable peer should not cause).
func (r *relay) send(data []byte, peer netip.AddrPort, f *flow) {
	if _, err := r.conn.WriteToUDPAddrPort(data, peer); err != nil {
		f.sendErrors.Add(1)
		return
	}
	f.packets.Add(1)
	f.bytes.Add(uint64(len(data)))
}

// portPool tracks the relay ports of one family that the server holds, so
// that it tries to bind only ports it does not hold already.
type portPool struct {
	min, max uint16
	mu       sync.Mutex
	used     [1024]uint64 // bit p set: port p is held
}

func (p *portPool) take(port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, bit := port/64, uint64(1)<<(port%64)
	if p.used[w]&bit != 0 {
		return false
	}
	p.used[w] |= bit
	return true
}

func (p *portPool) release(port uint16) {
	p.mu.Lock()
	p.used[port/64] &^= uint64(1) << (port % 64)
	p.mu.Unlock()
}

// held counts the ports held, for tests and statistics.
func (p *portPool) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.used {
		n += bits.OnesCount64(w)
	}
	return n
}

// maxBindAttempts bounds the binds one Allocate tries before answering
// 508: ports the server does not hold may still be taken by other
// programs.
const maxBindAttempts = 64

var (
	errNoPort        = errors.New("turnserver: no relay port available")
	errNoDescriptors = errors.New("turnserver: descriptor budget spent")
)

// openRelay binds a relay socket of family f from the port range: an
// even port when even is set, and with reserve also the next port, whose
// socket it returns as next. RFC 8656, Section 7.2.
func (s *Server) openRelay(f turn.Family, even, reserve, dontFragment bool) (conn, next *net.UDPConn, err error) {
	fds := int64(1)
	if reserve {
		fds = 2
	}
	if !s.fds.take(fds) {
		return nil, nil, errNoDescriptors
	}
	defer func() {
		if err != nil {
			s.fds.release(fds)
		}
	}()
	pool := s.ports[familyIndex(f)]
	ip := s.relayIP[familyIndex(f)]
	err = pool.each(func(port uint16) bool {
		if (even || reserve) && port%2 != 0 || reserve && port == pool.max {
			return false
		}
		if reserve && !pool.take(port+1) {
			return false
		}
		var e error
		conn, e = listenRelay(ip, port, dontFragment)
		if e == nil && reserve {
			if next, e = listenRelay(ip, port+1, false); e != nil {
				conn.Close()
			}
		}
		if e != nil && reserve {
			pool.release(port + 1)
		}
		return e == nil
	})
	return conn, next, err
}

// each offers try ports of the range that the server does not hold, in
// random order, each taken for the call; a port for which try returns
// false is released. It stops at the first success or after
// maxBindAttempts tries, and then returns errNoPort. Random picks, rather
// than a scan from a random start, keep a block of ports that another
// program holds from costing all the attempts.
func (p *portPool) each(try func(port uint16) bool) error {
	span := int(p.max) - int(p.min) + 1
	for attempts, picks := 0, 0; attempts < maxBindAttempts && picks < 4*span+64; picks++ {
		port := uint16(int(p.min) + mrand.IntN(span))
		if !p.take(port) {
			continue
		}
		attempts++
		if try(port) {
			return nil
		}
		p.release(port)
	}
	return errNoPort
}

// relaySocketBuffer is the receive and send buffer asked for each relay
// socket, as for the listeners: a burst from a peer waits in the kernel
// instead of being dropped. It costs memory only while data is queued.
const relaySocketBuffer = 4 << 20

func listenRelay(ip netip.Addr, port uint16, dontFragment bool) (*net.UDPConn, error) {
	network := "udp6"
	if ip.Is4() {
		network = "udp4"
	}
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), network, netip.AddrPortFrom(ip, port).String())
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	udpio.SetBuffers(c, relaySocketBuffer, relaySocketBuffer)
	if dontFragment {
		if err := udpio.SetDontFragment(c, ip.Is4()); err != nil {
			c.Close()
			return nil, fmt.Errorf("turnserver: DONT-FRAGMENT: %w", err)
		}
	}
	return c, nil
}

// reservation is a port held for a RESERVATION-TOKEN (RFC 8656, Section
// 7.2, EVEN-PORT with the R bit): the bound socket itself, so that no
// other program takes the port meanwhile. It counts as one of its user's
// allocations until it is redeemed or expires, so reserving cannot escape
// the quota.
type reservation struct {
	family  turn.Family
	conn    *net.UDPConn
	expires int64
	user    *user // whose quota it counts against; nil once released
}

func newToken() [8]byte {
	var t [8]byte
	rand.Read(t[:])
	return t
}

// reserve files next under a fresh token, counted against u. It returns
// ok false when the server is closed, and full as well when u has no
// allocation left for it.
func (s *Server) reserve(f turn.Family, next *net.UDPConn, now int64, u *user) (tok [8]byte, ok, full bool) {
	tok = newToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return tok, false, false
	}
	if q := s.quota().AllocationsPerUser; q > 0 && u.allocs >= q {
		return tok, false, true
	}
	u.allocs++
	s.reservations[tok] = &reservation{family: f, conn: next, expires: now + int64(ReservationLifetime), user: u}
	return tok, true, false
}

// reservationFamily reports whether tok is a live reservation, and its
// family.
func (s *Server) reservationFamily(tok [8]byte) (turn.Family, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reservations[tok]
	if r == nil {
		return 0, false
	}
	return r.family, true
}

// redeem takes the reservation of tok out of the table and returns its
// user's allocation to the quota.
func (s *Server) redeem(tok [8]byte) *reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reservations[tok]
	delete(s.reservations, tok)
	if r != nil {
		r.unreserveLocked(s)
	}
	return r
}

// unreserveLocked returns the reservation's count to its user. s.mu must
// be held.
func (r *reservation) unreserveLocked(s *Server) {
	if r.user != nil {
		s.releaseUserLocked(r.user)
		r.user = nil
	}
}

// release closes the reserved socket and frees the port; the reservation
// must be out of the table and unreserved.
func (r *reservation) release(s *Server) {
	port := addrPortOf(r.conn.LocalAddr()).Port()
	r.conn.Close()
	s.ports[familyIndex(r.family)].release(port)
	s.fds.release(1)
}

// addrPortOf converts a socket address from the standard library,
// unmapped.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
