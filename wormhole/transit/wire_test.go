package transit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestHandshakeLines compares the handshake lines for a fixed key with
// those of magic-wormhole's transit.py (build_sender_handshake,
// build_receiver_handshake, build_sided_relay_handshake).
func TestHandshakeLines(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	ours := [][]byte{handshake(key, Sender), handshake(key, Receiver), relayHandshake(key, "0123456789abcdef")}
	py := testutil.RequireBinary(t, "/usr/bin/python3")
	out, err := testutil.Command(t.Context(), py, "-c", `
import sys
from wormhole.transit import build_sender_handshake, build_receiver_handshake, build_sided_relay_handshake
k = bytes([7]) * 32
for line in (build_sender_handshake(k), build_receiver_handshake(k), build_sided_relay_handshake(k, "0123456789abcdef")):
    print(line.hex())
`).Output()
	if err != nil {
		testutil.Unavailable(t, "magic-wormhole's Python module is not usable: %v", err)
	}
	theirs := strings.Fields(string(out))
	if len(theirs) != len(ours) {
		t.Fatalf("python printed %q", out)
	}
	for i := range ours {
		if hex.EncodeToString(ours[i]) != theirs[i] {
			t.Errorf("line %d: ours %q, transit.py %s", i, ours[i], theirs[i])
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	var key [32]byte
	key[0] = 1
	for seq, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 5000)} {
		rec := AppendRecord(nil, &key, uint64(seq), p)
		if len(rec) != len(p)+RecordOverhead {
			t.Fatalf("record of %d bytes for %d of data", len(rec), len(p))
		}
		got, err := OpenRecord(nil, &key, uint64(seq), rec[4:])
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("OpenRecord = %q, %v", got, err)
		}
		if _, err := OpenRecord(nil, &key, uint64(seq)+1, rec[4:]); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("out-of-order record accepted: %v", err)
		}
		rec[len(rec)-1] ^= 1
		if _, err := OpenRecord(nil, &key, uint64(seq), rec[4:]); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("tampered record accepted: %v", err)
		}
	}
}

// TestWriteRecordAllocs: sending a record allocates nothing once warm.
func TestWriteRecordAllocs(t *testing.T) {
	var key [32]byte
	buf := make([]byte, 0, 2048)
	p := make([]byte, 1024)
	seq := uint64(0)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendRecord(buf[:0], &key, seq, p)
		seq++
	}); n != 0 {
		t.Fatalf("AppendRecord allocates %v times", n)
	}
}

// TestConnRecordsAllocs: once warm, a record written and read back over a
// loopback TCP connection allocates nothing on either side.
func TestConnRecordsAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	key := bytes.Repeat([]byte{9}, 32)
	s, r := newConn(c1, key, Sender, "test"), newConn(c2, key, Receiver, "test")
	p := make([]byte, 1024)
	roundTrip := func() {
		if err := s.WriteRecord(p); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadRecord()
		if err != nil || len(got) != len(p) {
			t.Fatalf("ReadRecord = %d bytes, %v", len(got), err)
		}
	}
	roundTrip() // warm the buffers
	if n := testing.AllocsPerRun(100, roundTrip); n != 0 {
		t.Fatalf("a record round trip allocates %v times", n)
	}
}

func TestParseMessage(t *testing.T) {
	m, err := ParseMessage([]byte(`{"abilities-v1":[{"type":"direct-tcp-v1"},{"type":"relay-v1"},{"type":"tor-tcp-v1"}],
		"hints-v1":[{"type":"direct-tcp-v1","hostname":"127.0.0.1","port":4001,"priority":0.0},
		{"type":"relay-v1","hints":[{"type":"direct-tcp-v1","hostname":"relay","port":4001,"priority":0.0},{"type":"tor-tcp-v1","hostname":"x.onion","port":1}]},
		{"type":"tor-tcp-v1","hostname":"x.onion","port":80}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Hints) != 2 || m.Hints[0].Addr() != "127.0.0.1:4001" || len(m.Hints[1].Hints) != 1 || !m.has(TypeRelay) {
		t.Fatalf("ParseMessage = %+v", m)
	}
	for _, bad := range []string{`[`, `{"hints-v1":[{"type":"direct-tcp-v1","hostname":"h","port":0}]}`,
		`{"hints-v1":[{"type":"relay-v1","hints":[]}]}`, `{"hints-v1":[{"type":"direct-tcp-v1","port":1}]}`} {
		if _, err := ParseMessage([]byte(bad)); !errors.Is(err, ErrBadHints) {
			t.Errorf("ParseMessage(%s) = %v, want ErrBadHints", bad, err)
		}
	}
}

func TestParseAck(t *testing.T) {
	if _, err := ParseAck([]byte(`{"ack":"ok","sha256":"` + strings.Repeat("ab", 32) + `"}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{}`, `{"ack":"no","sha256":""}`, `{"ack":"ok","sha256":"zz"}`, `x`} {
		if _, err := ParseAck([]byte(bad)); !errors.Is(err, ErrBadAck) {
			t.Errorf("ParseAck(%s) = %v", bad, err)
		}
	}
}

// FuzzParseMessage: hints parsing never panics, and its output parses to
// itself.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"abilities-v1":[{"type":"relay-v1"}],"hints-v1":[{"type":"relay-v1","hints":[{"type":"direct-tcp-v1","hostname":"h","port":1}]}]}`))
	f.Add([]byte(`{"hints-v1":[{"type":"direct-tcp-v1","hostname":"127.0.0.1","port":4001,"priority":0.5}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		enc, _ := json.Marshal(m)
		again, err := ParseMessage(enc)
		if err != nil || len(again.Hints) != len(m.Hints) {
			t.Fatalf("%s re-parsed as %+v, %v", enc, again, err)
		}
	})
}

// FuzzOpenRecord: opening arbitrary bytes as a record never panics, and
// only a real record opens.
func FuzzOpenRecord(f *testing.F) {
	var key [32]byte
	f.Add(AppendRecord(nil, &key, 0, []byte("hello"))[4:], uint64(0))
	f.Add([]byte("short"), uint64(1))
	f.Fuzz(func(t *testing.T, body []byte, seq uint64) {
		p, err := OpenRecord(nil, &key, seq, body)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendRecord(nil, &key, seq, p)[4:], body) {
			t.Fatalf("opened %x from a record that does not re-seal the same", body)
		}
	})
}

// FuzzHandshake: the handshake reader never panics and accepts exactly the
// expected bytes.
func FuzzHandshake(f *testing.F) {
	key := bytes.Repeat([]byte{3}, 32)
	want := handshake(key, Sender)
	f.Add(want)
	f.Add([]byte("transit sender 00 ready\n\n"))
	f.Add([]byte("nevermind\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := expect(bytes.NewReader(b), want)
		if (err == nil) != bytes.HasPrefix(b, want) {
			t.Fatalf("expect(%q) = %v", b, err)
		}
		_ = expectGo(bytes.NewReader(b))
		_, _ = ParseAck(b)
	})
}
