package peer

import (
	"encoding/binary"
	"encoding/hex"
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
	Start  *start  `json:"start,omitempty"`
	Entry  *Entry  `json:"entry,omitempty"`
	Done   *done   `json:"done,omitempty"`
	Ack    *ack    `json:"ack,omitempty"`
}

// answer is the receiver's reply to an offer.
type answer struct {
	Accept bool   `json:"accept"`
	Reason string `json:"reason,omitempty"`
	// Resume, in an accepting answer to a file of known size, offers to
	// continue a partial copy: the receiver has the first Offset bytes,
	// whose SHA-256 is SHA256.
	Resume *resume `json:"resume,omitempty"`
}

// resume describes the part of a file that the receiver already has.
type resume struct {
	Offset int64  `json:"offset"`
	SHA256 string `json:"sha256"`
}

// start is the sender's reply to an answer that offered to resume: the
// data follows from Offset, which is the receiver's offset when the
// sender's file starts with the same bytes, else 0 (start over).
type start struct {
	Offset int64 `json:"offset"`
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
	for _, set := range []bool{m.Offer != nil, m.Answer != nil, m.Start != nil, m.Entry != nil, m.Done != nil, m.Ack != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("peer: control message must hold exactly one of offer, answer, start, entry, done, ack")
	}
	switch {
	case m.Offer != nil:
		return &m, m.Offer.check()
	case m.Answer != nil && m.Answer.Resume != nil:
		r := m.Answer.Resume
		if r.Offset <= 0 || !isSHA256(r.SHA256) || !m.Answer.Accept {
			return nil, fmt.Errorf("peer: resume offer at %d with hash %.80q", r.Offset, r.SHA256)
		}
	case m.Start != nil:
		if m.Start.Offset < 0 {
			return nil, fmt.Errorf("peer: start at a negative offset %d", m.Start.Offset)
		}
	case m.Entry != nil:
		return &m, m.Entry.check()
	}
	return &m, nil
}

// check checks an offer's fields against its kind.
func (o *Offer) check() error {
	switch {
	case o.Size < 0 || o.Files < 0 || o.Dirs < 0:
		return fmt.Errorf("peer: offer of a negative size %d, %d files or %d directories", o.Size, o.Files, o.Dirs)
	case o.Mode&^0o777 != 0:
		return fmt.Errorf("peer: offer of mode %#o: only permission bits", o.Mode)
	case o.Kind == KindFile:
		if o.Stream && o.Size != 0 {
			return errors.New("peer: a streamed offer has no size")
		}
	case o.Kind == KindDir:
		if o.Stream {
			return errors.New("peer: a directory is not streamed")
		}
	case o.Kind == KindPipe || o.Kind == KindForward:
	default:
		return fmt.Errorf("peer: offer of unknown kind %.40q", o.Kind)
	}
	if o.Kind != KindDir && (o.Files != 0 || o.Dirs != 0) {
		return errors.New("peer: only a directory offer counts files and directories")
	}
	return nil
}

// check checks a directory entry: a valid relative path (ValidPath),
// permission bits only, and no size for a directory.
func (e *Entry) check() error {
	if err := ValidPath(e.Path); err != nil {
		return err
	}
	switch {
	case e.Mode&^0o777 != 0:
		return fmt.Errorf("peer: entry %q of mode %#o: only permission bits", e.Path, e.Mode)
	case e.Size < 0:
		return fmt.Errorf("peer: entry %q of a negative size", e.Path)
	case e.Dir && e.Size != 0:
		return fmt.Errorf("peer: directory entry %q with a size", e.Path)
	}
	return nil
}

// isSHA256 reports whether s is a SHA-256 in lower-case hex.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	b, err := hex.DecodeString(s)
	return err == nil && hex.EncodeToString(b) == s
}
