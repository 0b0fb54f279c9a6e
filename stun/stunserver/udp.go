package stunserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
)

// UDP I/O tuning. udpBatch selects recvmmsg/sendmmsg (Linux) over one
// datagram per system call; it is a variable so that tests and benchmarks
// can compare both paths.
var (
	udpBatch     = true
	udpBatchSize = 32
)

// udpSocketBuffer is the receive and send buffer asked for each UDP
// socket, as coturn does for its listeners: a burst of relayed traffic
// waits in the kernel instead of being dropped. The kernel caps it at
// net.core.rmem_max unless the server runs with CAP_NET_ADMIN.
const udpSocketBuffer = 4 << 20

// slotSize is the room for one batched response. Larger responses (long
// SOFTWARE plus an error, PADDING) are sent at once instead of batched.
const slotSize = 512

// scratchSize holds any response: a request of MaxMessageSize can at most
// be echoed in PADDING or listed in UNKNOWN-ATTRIBUTES (half its size),
// plus the fixed attributes, a 509-byte reason and SOFTWARE.
const scratchSize = MaxMessageSize + 2048

// udpSocket is one socket of a UDP address, read by one goroutine.
type udpSocket struct {
	conn  *udpio.Conn
	role  role
	index int // position in its address's group
	st    counters
}

// listenUDP binds the UDP sockets: one group on cfg.UDP, and with RFC 5780
// three more on the alternate port and IP (Section 6). With port 0 the
// group on IP1:P1 gets a free port; if P2 or the alternate IP then turns
// out to be taken, it tries another.
func (s *Server) listenUDP() error {
	c := s.cfg
	opt := udpio.Options{Batch: udpBatch, ReadBuffer: udpSocketBuffer, WriteBuffer: udpSocketBuffer}
	attempts := 1
	if c.AlternateIP.IsValid() && c.UDP.Port() == 0 {
		attempts = 20
	}
	var err error
	for range attempts {
		var groups [4][]*udpio.Conn
		groups[rolePrimary], err = udpio.ListenGroup(c.UDP, c.UDPSockets, opt)
		if err != nil {
			return fmt.Errorf("stunserver: listen udp %v: %w", c.UDP, err)
		}
		p1 := groups[rolePrimary][0].LocalAddr().Port()
		if c.AlternateIP.IsValid() {
			p2 := c.AlternatePort
			if p2 == 0 {
				p2 = p1 + 1 // wraps to 0 for 65535, which the check below refuses
			}
			ip1, ip2 := c.UDP.Addr(), c.AlternateIP
			err = nil
			if p2 == 0 || p2 == p1 {
				err = fmt.Errorf("%w: no alternate port after %d", udpio.ErrAddrInUse, p1)
			}
			for _, r := range []role{roleAltPort, roleAltIP, roleAltBoth} {
				if err != nil {
					break
				}
				ip, port := ip1, p1
				if r&roleAltIP != 0 {
					ip = ip2
				}
				if r&roleAltPort != 0 {
					port = p2
				}
				groups[r], err = udpio.ListenGroup(netip.AddrPortFrom(ip, port), c.UDPSockets, opt)
				if err != nil {
					err = fmt.Errorf("stunserver: listen udp %v (RFC 5780 %s): %w", netip.AddrPortFrom(ip, port), r, err)
				}
			}
			if err != nil {
				for _, g := range groups {
					for _, u := range g {
						u.Close()
					}
				}
				if errors.Is(err, udpio.ErrAddrInUse) {
					continue // with port 0: try another P1
				}
				return err
			}
		}
		for r, g := range groups {
			for i, u := range g {
				s.udp[r] = append(s.udp[r], &udpSocket{conn: u, role: role(r), index: i})
			}
			if len(g) > 0 {
				s.resp.udpAddrs[r] = g[0].LocalAddr()
				s.endpoints = append(s.endpoints, Endpoint{Network: "udp", Addr: g[0].LocalAddr(), Role: role(r).String()})
			}
		}
		return nil
	}
	return err
}

// readUDP is the receive loop of one socket: read a batch, answer each
// datagram, send the answers in a batch. Responses that CHANGE-REQUEST
// sends from another address go out at once through the socket of that
// role with the same index. It returns when the socket is closed.
func (s *Server) readUDP(u *udpSocket) {
	defer s.wg.Done()
	n := 1
	if u.conn.Batched() {
		n = udpBatchSize
	}
	in := make([]udpio.Message, n)
	bufs := make([]byte, n*MaxMessageSize)
	for i := range in {
		in[i].Buf = bufs[i*MaxMessageSize : (i+1)*MaxMessageSize : (i+1)*MaxMessageSize]
	}
	slots := make([]byte, n*slotSize)
	out := make([]udpio.Message, 0, n)
	scratch := make([]byte, 0, scratchSize)
	w := newWorker(s.resp, &u.st)
	if b, ok := s.resp.handler.(OtherBatcher); ok && s.resp.other != nil {
		w.batch = b.NewOtherBatch()
	}
	o := origin{tr: tUDP, role: u.role, local: u.conn.LocalAddr(), conn: u}
	var delay time.Duration
	for {
		k, err := u.conn.ReadBatch(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			u.st.readErrors.Add(1)
			if !s.backoff(&delay) {
				return
			}
			continue
		}
		delay = 0
		out = out[:0]
		for i := range k {
			m := &in[i]
			if m.Truncated {
				u.st.malformed.Add(1)
				continue
			}
			rep := w.handle(scratch[:0], m.Buf[:m.N], m.Addr, o)
			switch {
			case len(rep.b) == 0:
			case rep.via == u.role && len(rep.b) <= slotSize:
				j := len(out)
				slot := slots[j*slotSize : j*slotSize+len(rep.b)]
				copy(slot, rep.b)
				out = append(out, udpio.Message{Buf: slot, Addr: rep.to})
			default:
				s.sendVia(u, rep)
			}
		}
		if w.batch != nil {
			w.flush()
		}
		if len(out) > 0 {
			sent, _ := u.conn.WriteBatch(out)
			if sent < len(out) {
				u.st.sendErrors.Add(uint64(len(out) - sent))
			}
		}
	}
}

// sendVia sends one response through a socket of role rep.via.
func (s *Server) sendVia(u *udpSocket, rep reply) {
	g := s.udp[rep.via]
	if len(g) == 0 {
		u.st.sendErrors.Add(1) // cannot happen: handle only picks roles that exist
		return
	}
	if _, err := g[u.index%len(g)].conn.WriteTo(rep.b, rep.to); err != nil {
		u.st.sendErrors.Add(1)
	}
}
