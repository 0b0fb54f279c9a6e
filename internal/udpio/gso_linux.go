//go:build linux

package udpio

import (
	"net"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18). A Sender
// sends a run of datagrams to one destination, all of one size but the
// last (which may be shorter), as one sendmsg with a UDP_SEGMENT control
// message: the kernel builds one large buffer and cuts it into the
// original datagrams in the driver, the NIC or, on loopback, at the
// receiving socket. The receiver gets the same separate datagrams either
// way. The run is gathered with one iovec per datagram, so nothing is
// copied. Several runs (and single datagrams) still go out in one
// sendmmsg.

const (
	// maxSegments is the most datagrams of one GSO send (UDP_MAX_SEGMENTS
	// is 64 before Linux 6.10, 128 since).
	maxSegments = 64
	// maxGSOBytes bounds the payload of one GSO send below the largest
	// UDP payload of IPv4 (65,507 bytes).
	maxGSOBytes = 65000
	// maxSegmentSize4 and maxSegmentSize6 are the largest datagrams that
	// are grouped at first: ones that fit an Ethernet frame with the IPv4
	// or IPv6 and UDP headers. The kernel refuses a GSO send whose segments
	// exceed the route's MTU (EMSGSIZE; EINVAL on older kernels), where a
	// plain send would be fragmented; larger datagrams, rare in TURN, go out
	// one by one instead.
	maxSegmentSize4 = 1500 - 20 - 8
	maxSegmentSize6 = 1500 - 40 - 8
)

// gsoCmsgSpace is the room for one UDP_SEGMENT control message.
var gsoCmsgSpace = unix.CmsgSpace(2)

// gsoAvailable reports whether the kernel knows UDP_SEGMENT. A kernel
// without it would ignore the control message and send one oversized
// datagram, so it is probed once (getsockopt fails on such kernels) before
// any Target uses it.
var gsoAvailable = sync.OnceValue(func() bool {
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			continue
		}
		_, err = unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT)
		unix.Close(fd)
		return err == nil
	}
	return false
})

// gsoScratch is a Sender's room for the control messages of one
// sendmmsg, and which messages each header carries.
type gsoScratch struct {
	cmsgs []byte
	start [maxBatch]int // first message of header i, an index into ms
	count [maxBatch]int // messages in header i
}

// gsoRun returns how many messages from ms[0] form one GSO send: all to
// ms[0].Addr, all of ms[0]'s size (at most maxSeg) but the last, which may
// be shorter; at most limit.
func gsoRun(ms []Message, limit, maxSeg int) int {
	size := len(ms[0].Buf)
	if size == 0 || size > maxSeg {
		return 1
	}
	limit = min(limit, len(ms), maxSegments)
	total, k := size, 1
	for k < limit {
		m := &ms[k]
		n := len(m.Buf)
		if m.Addr != ms[0].Addr || n == 0 || n > size || total+n > maxGSOBytes {
			break
		}
		total += n
		k++
		if n < size {
			break // a shorter datagram ends the run
		}
	}
	return k
}

// sendGSO sends ms through t as write does, with each run of datagrams
// that gsoRun finds sent as one GSO datagram. When the route's MTU is
// smaller than a run's segments (EMSGSIZE), that run goes out with plain
// sendmmsg, and t groups only smaller datagrams from then on. When the
// kernel refuses GSO itself (EIO: the device cannot checksum; EINVAL:
// checksums turned off, or an older kernel's answer to a segment over the
// MTU), it turns GSO off for t and sends the rest with plain sendmmsg.
func (s *Sender) sendGSO(t *Target, family int, ms []Message) (int, error) {
	st, g := &s.st, &s.gso
	sent := 0
	maxSeg := int(t.gsoMax.Load())
	var first error
	for i := range ms {
		ms[i].N = -1
	}
	for len(ms) > 0 {
		// Pack headers: one per run, at most maxBatch messages in all so
		// that every message has an iovec.
		nh, nm := 0, 0
		for nm < len(ms) && nh < maxBatch && nm < maxBatch {
			namelen, err := encodeSockaddr(family, ms[nm].Addr, &st.names[nh])
			if err != nil {
				if first == nil {
					first = err
				}
				nm++ // not sent; the headers around it are independent
				continue
			}
			k := gsoRun(ms[nm:], maxBatch-nm, maxSeg)
			for j := range k {
				iov := &st.iovs[nm+j]
				iov.Base = unsafe.SliceData(ms[nm+j].Buf)
				iov.SetLen(len(ms[nm+j].Buf))
			}
			h := &st.hdrs[nh]
			h.hdr = unix.Msghdr{
				Name:    (*byte)(unsafe.Pointer(&st.names[nh])),
				Namelen: namelen,
				Iov:     &st.iovs[nm],
			}
			h.hdr.SetIovlen(k)
			h.n = 0
			if k > 1 {
				c := g.cmsgs[nh*gsoCmsgSpace : (nh+1)*gsoCmsgSpace]
				ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
				ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
				ch.SetLen(unix.CmsgLen(2))
				*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(len(ms[nm].Buf))
				h.hdr.Control = &c[0]
				h.hdr.SetControllen(gsoCmsgSpace)
			}
			g.start[nh], g.count[nh] = nm, k
			nh++
			nm += k
		}
		if nh == 0 {
			ms = ms[nm:]
			continue
		}
		st.count = nh
		if err := t.rc.Write(st.fn); err != nil {
			if first == nil {
				first = err
			}
			return sent, first // closed
		}
		if st.errno != 0 {
			// sendmmsg reports an error only when the first header
			// failed.
			start, k := g.start[0], g.count[0]
			if k > 1 && st.errno == unix.EMSGSIZE {
				size := len(ms[start].Buf)
				maxSeg = min(maxSeg, size-1)
				t.gsoMax.Store(int32(maxSeg)) // a racing Sender may store a higher cap: the next refusal lowers it again
				n, err := st.write(t.rc, family, ms[start:start+k])
				if first == nil {
					first = err
				}
				sent += n
				ms = ms[start+k:]
				continue
			}
			if k > 1 && (st.errno == unix.EIO || st.errno == unix.EINVAL) {
				if t.gso.CompareAndSwap(true, false) {
					s.gsoDisabled++
				}
				n, err := st.write(t.rc, family, ms[start:])
				if first == nil {
					first = err
				}
				return sent + n, first
			}
			if first == nil {
				first = &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(ms[start].Addr), Err: os.NewSyscallError("sendmmsg", st.errno)}
			}
			ms = ms[start+k:]
			continue
		}
		for i := range st.n {
			for j := g.start[i]; j < g.start[i]+g.count[i]; j++ {
				ms[j].N = len(ms[j].Buf)
			}
			sent += g.count[i]
		}
		if st.n < nh {
			ms = ms[g.start[st.n]:]
		} else {
			ms = ms[nm:]
		}
	}
	return sent, first
}
