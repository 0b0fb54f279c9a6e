package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// errPaceStopped: a paced write was cancelled.
var errPaceStopped = errors.New("peer: transfer cancelled")

// maxChunk caps one chunk of streamed data.
const maxChunk = 1 << 20

// Streamed data (an offer with Stream set: the sender does not know the
// size, as for standard input) is a sequence of chunks, each a 4-byte
// big-endian length and that many bytes, ended by a chunk of length zero.

// chunkWriter writes each Write as chunks to w; Close writes the end. It
// allocates nothing per write.
type chunkWriter struct {
	w   io.Writer
	hdr [4]byte
}

func (c *chunkWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), maxChunk)
		binary.BigEndian.PutUint32(c.hdr[:], uint32(k))
		if _, err := c.w.Write(c.hdr[:]); err != nil {
			return n, err
		}
		m, err := c.w.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// Close writes the end of the chunks; it does not close w.
func (c *chunkWriter) Close() error {
	c.hdr = [4]byte{}
	_, err := c.w.Write(c.hdr[:])
	return err
}

// chunkReader reads the data of chunks from r and returns io.EOF after
// the end chunk (and io.ErrUnexpectedEOF when r ends before it).
type chunkReader struct {
	r    io.Reader
	left int
	end  bool
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if c.end {
		return 0, io.EOF
	}
	if c.left == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("peer: streamed data: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxChunk {
			return 0, fmt.Errorf("peer: streamed data: a chunk of %d bytes (max %d)", n, maxChunk)
		}
		if n == 0 {
			c.end = true
			return 0, io.EOF
		}
		c.left = int(n)
	}
	n, err := c.r.Read(b[:min(len(b), c.left)])
	c.left -= n
	if err == io.EOF {
		err = nil
		if n == 0 {
			err = fmt.Errorf("peer: streamed data: %w", io.ErrUnexpectedEOF)
		}
	}
	return n, err
}

// pacedWriter writes to w at most rate bytes per second on average since
// its first write, sleeping when it is ahead; a close of stop ends the
// sleep with errPaceStopped.
type pacedWriter struct {
	stop  <-chan struct{}
	w     io.Writer
	rate  int64
	start time.Time
	n     int64
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	written := 0
	for len(b) > 0 {
		k := min(int64(len(b)), max(p.rate/20, 1))
		n, err := p.w.Write(b[:k])
		written += n
		p.n += int64(n)
		if err != nil {
			return written, err
		}
		b = b[n:]
		due := p.start.Add(time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.stop:
				t.Stop()
				return written, errPaceStopped
			}
		}
	}
	return written, nil
}
