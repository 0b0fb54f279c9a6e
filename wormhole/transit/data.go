package transit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ChunkSize is how much data SendData puts in one record.
const ChunkSize = 256 << 10

// ErrBadAck: the receiver's final ack is missing, not "ok", or its SHA-256
// differs from what was sent.
var ErrBadAck = errors.New("transit: bad ack from the receiver")

// Ack is the receiver's last record after a file transfer
// (file-transfer-protocol.md).
type Ack struct {
	Ack    string `json:"ack"`
	SHA256 string `json:"sha256"`
}

// ParseAck decodes the receiver's ack record.
func ParseAck(b []byte) (Ack, error) {
	var a Ack
	if err := json.Unmarshal(b, &a); err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrBadAck, err)
	}
	if a.Ack != "ok" {
		return Ack{}, fmt.Errorf("%w: ack %q", ErrBadAck, a.Ack)
	}
	if _, err := hex.DecodeString(a.SHA256); err != nil || len(a.SHA256) != 2*sha256.Size {
		return Ack{}, fmt.Errorf("%w: sha256 %q", ErrBadAck, a.SHA256)
	}
	return a, nil
}

// SendData sends size bytes from r in records of ChunkSize, then waits for
// the receiver's ack and checks its SHA-256 against what was sent. The
// caller bounds the time with deadlines on c.NetConn().
func SendData(c *Conn, r io.Reader, size int64) error {
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	for sent := int64(0); sent < size; {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-sent)])
		if err != nil {
			return fmt.Errorf("transit: reading the data after %d of %d bytes: %w", sent, size, err)
		}
		h.Write(buf[:n])
		if err := c.WriteRecord(buf[:n]); err != nil {
			return err
		}
		sent += int64(n)
	}
	rec, err := c.ReadRecord()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAck, err)
	}
	a, err := ParseAck(rec)
	if err != nil {
		return err
	}
	if want := hex.EncodeToString(h.Sum(nil)); a.SHA256 != want {
		return fmt.Errorf("%w: the receiver got sha256 %s, we sent %s", ErrBadAck, a.SHA256, want)
	}
	return nil
}

// ReceiveData reads records until size bytes arrived, writes them to w,
// sends the ack with their SHA-256 and returns it: ReadData, then SendAck.
// The caller bounds the time with deadlines on c.NetConn().
func ReceiveData(c *Conn, w io.Writer, size int64) ([]byte, error) {
	sum, err := ReadData(c, w, size)
	if err != nil {
		return nil, err
	}
	if err := SendAck(c, sum); err != nil {
		return nil, err
	}
	return sum, nil
}

// ReadData reads records until size bytes arrived, writes them to w and
// returns their SHA-256, without acknowledging them: a receiver that must
// still check or unpack the data sends the ack (SendAck) only when that
// worked, so that a failure fails the sender's transfer too. More data
// than size is an error. The caller bounds the time with deadlines on
// c.NetConn().
func ReadData(c *Conn, w io.Writer, size int64) ([]byte, error) {
	var h hash.Hash = sha256.New()
	for got := int64(0); got < size; {
		rec, err := c.ReadRecord()
		if err != nil {
			return nil, fmt.Errorf("transit: after %d of %d bytes: %w", got, size, err)
		}
		if int64(len(rec)) > size-got {
			return nil, fmt.Errorf("transit: the sender sent more than the %d bytes it offered", size)
		}
		h.Write(rec)
		if _, err := w.Write(rec); err != nil {
			return nil, err
		}
		got += int64(len(rec))
	}
	return h.Sum(nil), nil
}

// SendAck sends the receiver's final record: {"ack":"ok","sha256":HEX}.
func SendAck(c *Conn, sum []byte) error {
	ack, _ := json.Marshal(Ack{Ack: "ok", SHA256: hex.EncodeToString(sum)})
	return c.WriteRecord(ack)
}
