package transit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"golang.org/x/crypto/nacl/secretbox"
)

// RecordOverhead is what a record adds to its data: the 4-byte length, the
// 24-byte nonce and secretbox's 16-byte tag.
const RecordOverhead = 4 + nonceSize + secretbox.Overhead

// MaxRecord caps the data in one record that ReadRecord accepts.
const MaxRecord = 4 << 20

const nonceSize = 24

// ErrBadRecord: a record that is too long or too short, out of order, or
// that does not open with the key.
var ErrBadRecord = errors.New("transit: bad record")

// Conn is an established transit connection: it carries records sealed
// with NaCl secretbox, each side under its own key, nonces counting up from
// zero (transit.md). ReadRecord and WriteRecord may run concurrently with
// each other but not with themselves. Close closes the connection.
type Conn struct {
	c        net.Conn
	desc     string
	sendKey  [32]byte
	recvKey  [32]byte
	sendNext uint64
	recvNext uint64

	wmu  sync.Mutex
	wbuf []byte
	hdr  [4]byte // a record's length (a field: a local would escape)
	rbuf []byte  // a record as read
	obuf []byte  // its data
}

func newConn(c net.Conn, key []byte, role Role, desc string) *Conn {
	tc := &Conn{c: c, desc: desc}
	sk, rk := derive(key, "transit_record_sender_key"), derive(key, "transit_record_receiver_key")
	if role == Receiver {
		sk, rk = rk, sk
	}
	copy(tc.sendKey[:], sk)
	copy(tc.recvKey[:], rk)
	return tc
}

// Describe says how the connection was made ("direct 127.0.0.1:4001",
// "relay 127.0.0.1:4002").
func (c *Conn) Describe() string { return c.desc }

// NetConn returns the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.c }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// WriteRecord seals p as the next record and writes it.
func (c *Conn) WriteRecord(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(p) > MaxRecord {
		return fmt.Errorf("transit: record of %d bytes exceeds %d", len(p), MaxRecord)
	}
	c.wbuf = AppendRecord(c.wbuf[:0], &c.sendKey, c.sendNext, p)
	c.sendNext++
	_, err := c.c.Write(c.wbuf)
	return err
}

// ReadRecord reads and opens the next record. The returned slice is valid
// until the next ReadRecord.
func (c *Conn) ReadRecord() ([]byte, error) {
	if _, err := io.ReadFull(c.c, c.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(c.hdr[:])
	if n > MaxRecord+nonceSize+secretbox.Overhead {
		return nil, fmt.Errorf("%w: length %d exceeds the limit", ErrBadRecord, n)
	}
	if cap(c.rbuf) < int(n) {
		c.rbuf = make([]byte, n)
	}
	body := c.rbuf[:n]
	if _, err := io.ReadFull(c.c, body); err != nil {
		return nil, fmt.Errorf("transit: reading a record: %w", err)
	}
	out, err := OpenRecord(c.obuf[:0], &c.recvKey, c.recvNext, body)
	if err != nil {
		return nil, err
	}
	c.obuf = out
	c.recvNext++
	return out, nil
}

// AppendRecord appends the record for p, sealed with key under the nonce
// seq: length, nonce, box.
func AppendRecord(b []byte, key *[32]byte, seq uint64, p []byte) []byte {
	var nonce [nonceSize]byte
	binary.BigEndian.PutUint64(nonce[nonceSize-8:], seq)
	b = binary.BigEndian.AppendUint32(b, uint32(nonceSize+secretbox.Overhead+len(p)))
	b = append(b, nonce[:]...)
	return secretbox.Seal(b, p, &nonce, key)
}

// OpenRecord opens body (a record without its length: nonce and box),
// which must carry the nonce seq, appending the data to out.
func OpenRecord(out []byte, key *[32]byte, seq uint64, body []byte) ([]byte, error) {
	if len(body) < nonceSize+secretbox.Overhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrBadRecord, len(body))
	}
	var nonce, want [nonceSize]byte
	copy(nonce[:], body)
	binary.BigEndian.PutUint64(want[nonceSize-8:], seq)
	if nonce != want {
		return nil, fmt.Errorf("%w: nonce %x out of order, want record %d", ErrBadRecord, nonce, seq)
	}
	res, ok := secretbox.Open(out, body[nonceSize:], &nonce, key)
	if !ok {
		return nil, fmt.Errorf("%w: record %d does not open with the key", ErrBadRecord, seq)
	}
	return res, nil
}
