package netx

import "sync"

// BufSize is the size of the pooled datagram buffers: more than a
// datagram on any usual path MTU. Larger datagrams get a buffer of their
// own.
const BufSize = 2048

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, BufSize); return &b }}

// CopyBuf returns a buffer holding a copy of b, taken from a pool when b
// fits BufSize, for a receive path that hands datagrams from a read loop
// to a reader through a queue without allocating. The receiver owns it
// until it passes it to FreeBuf.
func CopyBuf(b []byte) *[]byte {
	if len(b) > BufSize {
		c := append([]byte(nil), b...)
		return &c
	}
	bp := bufs.Get().(*[]byte)
	*bp = append((*bp)[:0], b...)
	return bp
}

// FreeBuf gives a buffer from CopyBuf back to the pool; nil is ignored.
// Nothing may use it afterwards.
func FreeBuf(bp *[]byte) {
	if bp != nil && cap(*bp) == BufSize {
		bufs.Put(bp)
	}
}
