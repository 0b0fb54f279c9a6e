package stunclient

import (
	"bufio"
	"fmt"
	"io"
	"net"

	"github.com/icebreaker-net/icebreaker/stun"
)

// readStream is the read loop of a stream Client. Over TCP and TLS, STUN
// messages follow each other with no framing but their own length field
// (RFC 8489, Section 6.2.2). Another protocol may share the stream (TURN
// interleaves ChannelData, RFC 8656, Section 12.5): its messages, told
// apart by their first byte (stun.StreamFrame) and framed by
// Config.StreamOther, are skipped. Anything else loses the framing, so the
// loop ends and the Client stops, as it does when the connection ends.
func (c *Client) readStream(conn net.Conn, other stun.FrameFunc) {
	defer close(c.readDone)
	r := bufio.NewReader(conn)
	buf := make([]byte, 0, 1500)
	for {
		msg, err := readFrame(r, buf, other)
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("closed by the peer: %w", err)
			}
			c.shutdown(fmt.Errorf("stun: stream to %s: %w", c.remote, err))
			return
		}
		buf = msg[:0]
		if !stun.IsSTUNByte(msg[0]) {
			c.unmatched.Add(1) // another protocol's: not for this client
			continue
		}
		if !c.HandlePacket(msg, c.remote) {
			c.malformed.Add(1)
		}
	}
}

// readFrame reads the next message from r, a STUN message or one that
// other frames, into buf (grown as needed) and returns it. At a clean end
// of the stream it returns io.EOF.
func readFrame(r *bufio.Reader, buf []byte, other stun.FrameFunc) ([]byte, error) {
	want := 1
	var n int
	for n == 0 {
		hdr, err := r.Peek(want)
		if err != nil {
			if len(hdr) > 0 {
				return nil, noEOF(err)
			}
			return nil, err
		}
		var need int
		n, need, _, err = stun.StreamFrame(hdr, other)
		switch {
		case err != nil:
			return nil, fmt.Errorf("bad framing: %w", err)
		case n == 0 && (need <= want || need > r.Size()):
			return nil, fmt.Errorf("bad framing: a header of %d bytes", need)
		}
		want = need
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, noEOF(err)
	}
	return buf, nil
}

// noEOF turns an EOF in the middle of a message into ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
