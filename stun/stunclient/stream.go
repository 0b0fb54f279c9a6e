package stunclient

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/icebreaker-net/icebreaker/stun"
)

// readStream is the read loop of a stream Client. Over TCP and TLS, STUN
// messages follow each other with no framing but their own length field
// (RFC 8489, Section 6.2.2); TURN may interleave ChannelData messages,
// padded to 4 bytes over streams (RFC 8656, Section 12.5), which are
// skipped. Anything else loses the framing, so the loop ends and the
// Client stops, as it does when the connection ends.
func (c *Client) readStream(conn net.Conn) {
	defer close(c.readDone)
	r := bufio.NewReader(conn)
	buf := make([]byte, 0, 1500)
	for {
		msg, err := readFrame(r, buf)
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("closed by the peer: %w", err)
			}
			c.shutdown(fmt.Errorf("stun: stream to %s: %w", c.remote, err))
			return
		}
		buf = msg[:0]
		if stun.Classify(msg) != stun.KindSTUN {
			c.unmatched.Add(1) // ChannelData: not for this client
			continue
		}
		if !c.HandlePacket(msg, c.remote) {
			c.malformed.Add(1)
		}
	}
}

// readFrame reads the next STUN or ChannelData message from r into buf
// (grown as needed) and returns it.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [stun.HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return nil, err
	}
	var n int
	switch stun.Classify(hdr[:1]) {
	case stun.KindSTUN:
		if _, err := io.ReadFull(r, hdr[4:]); err != nil {
			return nil, noEOF(err)
		}
		var err error
		if n, err = stun.MessageLength(hdr[:]); err != nil {
			return nil, fmt.Errorf("bad framing: %w", err)
		}
	case stun.KindChannelData:
		n = 4 + (int(binary.BigEndian.Uint16(hdr[2:4]))+3)&^3
	default:
		return nil, fmt.Errorf("bad framing: first byte 0x%02x is neither STUN nor ChannelData", hdr[0])
	}
	buf = append(buf[:0], hdr[:]...)
	if stun.Classify(hdr[:1]) == stun.KindChannelData {
		buf = buf[:4]
	}
	have := len(buf)
	if cap(buf) < n {
		buf = append(buf, make([]byte, n-have)...)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf[have:]); err != nil {
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
