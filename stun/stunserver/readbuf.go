package stunserver

import "sync"

// Read buffers of TCP and TLS connections. Each connection reads into a
// small buffer of its own (tcpInitialBuffer). A message longer than that
// (a STUN message up to MaxMessageSize, an OtherHandler's frame up to
// maxOtherFrame) is read into a larger buffer taken from a pool and
// counted against Config.MaxReadBuffers, the bytes all the Server's
// connections may hold beyond their small buffers; the buffer goes back
// as soon as what is left of it fits the small one. A connection that
// needs a buffer when the budget is spent is closed (Stats.TCPBufferRefused),
// so that the memory held in half-read messages stays bounded however
// many connections there are.

// tcpInitialBuffer is the size of a connection's own read buffer.
const tcpInitialBuffer = 1024

// Large buffers, pooled by size: the two sizes a message can need.
var (
	stunBufs  = sync.Pool{New: func() any { return new([MaxMessageSize]byte) }}
	otherBufs = sync.Pool{New: func() any { return new([maxOtherFrame]byte) }}
)

// takeBuf returns a buffer of at least n bytes (n <= maxOtherFrame) out of
// the budget, or nil when the budget cannot spare it.
func (s *Server) takeBuf(n int) []byte {
	size := MaxMessageSize
	if n > MaxMessageSize {
		size = maxOtherFrame
	}
	if s.bufHeld.Add(int64(size)) > int64(s.cfg.MaxReadBuffers) {
		s.bufHeld.Add(-int64(size))
		return nil
	}
	if size == MaxMessageSize {
		return stunBufs.Get().(*[MaxMessageSize]byte)[:]
	}
	return otherBufs.Get().(*[maxOtherFrame]byte)[:]
}

// giveBuf returns a buffer takeBuf gave.
func (s *Server) giveBuf(b []byte) {
	s.bufHeld.Add(-int64(len(b)))
	if len(b) == MaxMessageSize {
		stunBufs.Put((*[MaxMessageSize]byte)(b))
	} else {
		otherBufs.Put((*[maxOtherFrame]byte)(b))
	}
}

// readBuf is a connection's read buffer: buf[start:end] holds bytes read
// and not yet handled. buf is small, or a large buffer of the budget. It
// is used by the connection's goroutine only.
type readBuf struct {
	s          *Server
	small, buf []byte
	start, end int
}

func newReadBuf(s *Server) *readBuf {
	b := make([]byte, tcpInitialBuffer)
	return &readBuf{s: s, small: b, buf: b}
}

// pending returns the bytes read and not yet handled.
func (r *readBuf) pending() []byte { return r.buf[r.start:r.end] }

// consume marks n pending bytes handled, and gives a large buffer back
// once the rest fits the small one.
func (r *readBuf) consume(n int) {
	r.start += n
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if len(r.buf) != len(r.small) && r.end-r.start <= len(r.small) {
		k := copy(r.small, r.buf[r.start:r.end])
		r.s.giveBuf(r.buf)
		r.buf, r.start, r.end = r.small, 0, k
	}
}

// room makes room for need bytes of pending data, at most maxOtherFrame,
// moving them to the front or to a larger buffer. It returns false when
// that needs a buffer the budget cannot spare.
func (r *readBuf) room(need int) bool {
	switch {
	case r.start+need <= len(r.buf):
		return true
	case need <= len(r.buf):
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
		return true
	}
	nb := r.s.takeBuf(need)
	if nb == nil {
		return false
	}
	k := copy(nb, r.buf[r.start:r.end])
	if len(r.buf) != len(r.small) {
		r.s.giveBuf(r.buf)
	}
	r.buf, r.start, r.end = nb, 0, k
	return true
}

// free returns the room after the pending bytes, to read into.
func (r *readBuf) free() []byte { return r.buf[r.end:] }

// filled marks k bytes read into free.
func (r *readBuf) filled(k int) { r.end += k }

// release gives a large buffer back when the connection ends.
func (r *readBuf) release() {
	if len(r.buf) != len(r.small) {
		r.s.giveBuf(r.buf)
		r.buf = r.small
	}
}
