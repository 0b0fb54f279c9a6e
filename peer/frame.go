package peer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxFrame caps a control message on a stream.
const maxFrame = 64 << 10

// Control messages of a transfer stream (see transfer.go). Each is a frame:
// a 4-byte big-endian length and that many bytes of JSON holding exactly
// one of the fields.
type message struct {
	Offer  *Offer  `json:"offer,omitempty"`
	Answer *answer `json:"answer,omitempty"`
	Done   *done   `json:"done,omitempty"`
	Ack    *ack    `json:"ack,omitempty"`
}

// answer is the receiver's reply to an offer.
type answer struct {
	Accept bool   `json:"accept"`
	Reason string `json:"reason,omitempty"`
}

// done follows the data: the sender's SHA-256 of what it sent.
type done struct {
	SHA256 string `json:"sha256"`
}

// ack is the receiver's verdict on the data.
type ack struct {
	OK     bool   `json:"ok"`
	SHA256 string `json:"sha256,omitempty"`
	Error  string `json:"error,omitempty"`
}

// appendFrame appends m as a frame to b.
func appendFrame(b []byte, m *message) []byte {
	j, _ := json.Marshal(m)
	b = binary.BigEndian.AppendUint32(b, uint32(len(j)))
	return append(b, j...)
}

func writeFrame(w io.Writer, m *message) error {
	_, err := w.Write(appendFrame(nil, m))
	return err
}

// readFrame reads one frame from r.
func readFrame(r io.Reader) (*message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("peer: control message of %d bytes (max %d)", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("peer: control message: %w", io.ErrUnexpectedEOF)
	}
	return parseMessage(b)
}

// parseMessage parses and checks the JSON of one frame.
func parseMessage(b []byte) (*message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("peer: control message: %w", err)
	}
	n := 0
	for _, set := range []bool{m.Offer != nil, m.Answer != nil, m.Done != nil, m.Ack != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("peer: control message must hold exactly one of offer, answer, done, ack")
	}
	if o := m.Offer; o != nil {
		if o.Size < 0 {
			return nil, fmt.Errorf("peer: offer of a negative size %d", o.Size)
		}
		if o.Kind != KindFile && o.Kind != KindPipe && o.Kind != KindForward {
			return nil, fmt.Errorf("peer: offer of unknown kind %.40q", o.Kind)
		}
	}
	return &m, nil
}
