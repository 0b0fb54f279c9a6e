//go:build linux

package udpio

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const msgTrunc = unix.MSG_TRUNC

// maxBatch bounds one recvmmsg/sendmmsg call; longer slices are served in
// several calls.
const maxBatch = 256

// mmsghdr is struct mmsghdr of recvmmsg(2). Go lays it out as C does: the
// trailing uint32 is padded to the alignment of Msghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgState is the scratch of one direction (read or write). The bound
// method values are made once, so a call allocates nothing.
type mmsgState struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	count int // messages offered to the system call
	n     int // messages the system call handled
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

type mmsgConn struct {
	rc     syscall.RawConn
	family int
	rd, wr mmsgState
}

func newMmsgConn(c *net.UDPConn, family int) (*mmsgConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgConn{rc: rc, family: family}
	for _, s := range []*mmsgState{&m.rd, &m.wr} {
		s.hdrs = make([]mmsghdr, maxBatch)
		s.iovs = make([]unix.Iovec, maxBatch)
		s.names = make([]unix.RawSockaddrInet6, maxBatch)
	}
	m.rd.fn = m.rd.recv
	m.wr.fn = m.wr.send
	return m, nil
}

// The batch system calls are made with RawSyscall6, without telling the
// Go scheduler (entersyscall): Go's sockets are non-blocking, so a call
// never waits, and it lasts at most a batch's copying and, on loopback,
// delivery. With Syscall6 the runtime hands the P to another thread
// whenever such a call outlasts a sysmon tick (20 µs), and that thread
// wakes, finds nothing to do and sleeps again: on a relay under load that
// cost about 1 µs of CPU per datagram (bench/turn, one core).
func (s *mmsgState) recv(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.count), 0, 0, 0)
		switch e {
		case 0:
			s.n, s.errno = int(r), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the poller until the socket is readable
		}
		s.n, s.errno = 0, e
		return true
	}
}

func (s *mmsgState) send(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.count), 0, 0, 0)
		switch e {
		case 0:
			s.n, s.errno = int(r), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until the socket is writable
		}
		s.n, s.errno = 0, e
		return true
	}
}

func (s *mmsgState) pack(i int, buf []byte) {
	iov := &s.iovs[i]
	iov.Base = unsafe.SliceData(buf)
	iov.SetLen(len(buf))
	h := &s.hdrs[i]
	h.hdr = unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&s.names[i])),
		Namelen: unix.SizeofSockaddrInet6,
		Iov:     iov,
	}
	h.hdr.SetIovlen(1)
	h.n = 0
}

func (m *mmsgConn) read(ms []Message) (int, error) {
	s := &m.rd
	s.count = min(len(ms), maxBatch)
	for i := range s.count {
		s.pack(i, ms[i].Buf)
	}
	if err := m.rc.Read(s.fn); err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", s.errno)
	}
	for i := range s.n {
		h := &s.hdrs[i]
		ms[i].N = int(h.n)
		ms[i].Truncated = h.hdr.Flags&unix.MSG_TRUNC != 0
		ms[i].Addr = decodeSockaddr(&s.names[i])
	}
	return s.n, nil
}

func (m *mmsgConn) write(ms []Message) (int, error) {
	return m.wr.write(m.rc, m.family, ms)
}

// write sends ms through the socket of rc with sendmmsg, using s as
// scratch. It sets N of each message to the bytes sent, -1 when the
// message was not sent.
func (s *mmsgState) write(rc syscall.RawConn, family int, ms []Message) (int, error) {
	sent := 0
	var first error
	for i := range ms {
		ms[i].N = -1
	}
	for len(ms) > 0 {
		s.count = min(len(ms), maxBatch)
		for i := range s.count {
			s.pack(i, ms[i].Buf)
			n, err := encodeSockaddr(family, ms[i].Addr, &s.names[i])
			if err != nil {
				// Keep the batch simple: send what precedes this message,
				// then skip it below as if the kernel had refused it.
				s.count = i
				if first == nil {
					first = err
				}
				break
			}
			s.hdrs[i].hdr.Namelen = n
		}
		if s.count > 0 {
			if err := rc.Write(s.fn); err != nil {
				if first == nil {
					first = err
				}
				return sent, first // closed
			}
			if s.errno != 0 {
				// sendmmsg reports an error only when the first message
				// failed: skip that one and go on.
				if first == nil {
					first = &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(ms[0].Addr), Err: os.NewSyscallError("sendmmsg", s.errno)}
				}
				ms = ms[1:]
				continue
			}
			for i := range s.n {
				ms[i].N = int(s.hdrs[i].n)
			}
			sent += s.n
			ms = ms[s.n:]
			continue
		}
		ms = ms[1:] // the message whose address could not be encoded
	}
	return sent, first
}

// Sender is the scratch of sendmmsg for sockets the caller opened, and
// of the UDP GSO groups it sends through them (gso_linux.go).
type Sender struct {
	st  mmsgState
	gso gsoScratch
	// ring sends SendSpread's messages, many sockets per system call;
	// made at the first SendSpread, nil without io_uring (uring_linux.go).
	ring      *ring
	ringTried bool
	sp        spreadState
	// gsoDisabled counts the Targets on which this Sender turned GSO off.
	gsoDisabled uint64
}

// NewSender returns a Sender with room for a full batch.
func NewSender() *Sender {
	s := &Sender{st: mmsgState{
		hdrs:  make([]mmsghdr, maxBatch),
		iovs:  make([]unix.Iovec, maxBatch),
		names: make([]unix.RawSockaddrInet6, maxBatch),
	}}
	s.st.fn = s.st.send
	s.gso.cmsgs = make([]byte, maxBatch*gsoCmsgSpace)
	return s
}

func (s *Sender) send(t *Target, ms []Message) (int, error) {
	family := unix.AF_INET
	if t.v6 {
		family = unix.AF_INET6
	}
	if t.gso.Load() && len(ms) > 1 {
		return s.sendGSO(t, family, ms)
	}
	return s.st.write(t.rc, family, ms)
}

// setBuffers sets SO_RCVBUF and SO_SNDBUF, first with the FORCE variants
// that pass net.core.rmem_max and wmem_max (they need CAP_NET_ADMIN), then
// with the plain ones, which the kernel caps. Errors are ignored.
func setBuffers(c *net.UDPConn, read, write int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if read > 0 && unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, read) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, read)
		}
		if write > 0 && unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, write) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, write)
		}
	})
}

func decodeSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), ntohs(sa4.Port))
	case unix.AF_INET6:
		ip := netip.AddrFrom16(sa.Addr)
		if ip.Is4In6() {
			return netip.AddrPortFrom(ip.Unmap(), ntohs(sa.Port))
		}
		if sa.Scope_id != 0 {
			ip = ip.WithZone(zoneName(sa.Scope_id))
		}
		return netip.AddrPortFrom(ip, ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

func encodeSockaddr(family int, ap netip.AddrPort, sa *unix.RawSockaddrInet6) (uint32, error) {
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return 0, errors.New("udpio: missing destination address")
	}
	if family == unix.AF_INET {
		if !ip.Is4() {
			return 0, errors.New("udpio: IPv6 destination on an IPv4 socket")
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(ap.Port()), Addr: ip.As4()}
		return unix.SizeofSockaddrInet4, nil
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(ap.Port()), Addr: ip.As16()}
	if z := ap.Addr().Zone(); z != "" {
		sa.Scope_id = zoneIndex(z)
	}
	return unix.SizeofSockaddrInet6, nil
}

// ntohs and htons convert a port between network byte order, as stored in
// a sockaddr's uint16 field, and a host value.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func htons(p uint16) uint16 {
	var v uint16
	b := (*[2]byte)(unsafe.Pointer(&v))
	b[0], b[1] = byte(p>>8), byte(p)
	return v
}

// zones caches interface names by index for link-local sources, so that a
// read does not allocate a name per datagram.
var zones struct {
	sync.Mutex
	names map[uint32]string
}

func zoneName(idx uint32) string {
	zones.Lock()
	defer zones.Unlock()
	if s, ok := zones.names[idx]; ok {
		return s
	}
	s := strconv.FormatUint(uint64(idx), 10)
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		s = ifi.Name
	}
	if zones.names == nil {
		zones.names = make(map[uint32]string)
	}
	if len(zones.names) < 1024 {
		zones.names[idx] = s
	}
	return s
}

func zoneIndex(zone string) uint32 {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}
