package turnserver

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// TestStreamChannelRange: over TCP, ChannelData is framed by package
// turn's one rule, honouring Config.LooseChannels: with it a frame on
// channel 0x7FFF is relayed; without it a frame whose first byte is 0x50
// is not ChannelData, the stream's framing is lost and the server closes
// the connection.
func TestStreamChannelRange(t *testing.T) {
	t.Run("loose", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.LooseChannels = true })
		c := dialClient(t, "tcp", e.tcp, "alice")
		c.allocate()
		p := newPeer(t, loop4)
		c.bind(0x7FFF, p.addr())
		c.sendChannel(0x7FFF, []byte("loose"))
		if got, _ := p.recv(); string(got) != "loose" {
			t.Fatalf("peer got %q", got)
		}
	})
	t.Run("strict", func(t *testing.T) {
		e := newEnv(t, nil)
		c := dialClient(t, "tcp", e.tcp, "alice")
		c.allocate()
		c.bind(0x4000, newPeer(t, loop4).addr()) // a channel: the frame is refused for its number
		c.write(turn.AppendChannelData(nil, 0x5000, []byte("not a channel"), true))
		if b, err := c.read(ioWait); !errors.Is(err, io.EOF) {
			t.Fatalf("read %x, %v; want the connection closed", b, err)
		}
	})
}

// TestStreamChannelDataNeedsChannel: over TCP a ChannelData frame is
// taken only once the connection's allocation has a channel; before that
// (after an Allocate, or a mere 401) the connection is closed before the
// frame is read, so that no client makes the server buffer 64 KiB
// without one.
func TestStreamChannelDataNeedsChannel(t *testing.T) {
	for _, allocate := range []bool{false, true} {
		t.Run(fmt.Sprintf("allocated=%v", allocate), func(t *testing.T) {
			e := newEnv(t, nil)
			c := dialClient(t, "tcp", e.tcp, "alice")
			if allocate {
				c.allocate()
			} else {
				id := stun.NewTransactionID() // a 401: the connection has spoken TURN
				c.roundTrip(c.build(stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, id, false), id)
			}
			c.write(turn.AppendChannelData(nil, 0x4000, make([]byte, 65000), true)[:1000])
			if b, err := c.read(ioWait); !errors.Is(err, io.EOF) {
				t.Fatalf("read %x, %v; want the connection closed", b, err)
			}
		})
	}
	e := newEnv(t, nil)
	c := dialClient(t, "tcp", e.tcp, "alice")
	c.allocate()
	p := newPeer(t, loop4)
	c.bind(0x4000, p.addr())
	c.sendChannel(0x4000, make([]byte, 65000))
	if got, _ := p.recv(); len(got) != 65000 {
		t.Fatalf("peer got %d bytes, want 65000", len(got))
	}
}

// TestFrameOther: the server's OtherHandler frames ChannelData only, in
// the configured channel range.
func TestFrameOther(t *testing.T) {
	for _, loose := range []bool{false, true} {
		t.Run(fmt.Sprintf("loose=%v", loose), func(t *testing.T) { testFrameOther(t, loose) })
	}
}

func testFrameOther(t *testing.T, loose bool) {
	auth, err := turnauth.New(turnauth.Config{Realm: realm, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Auth: auth, Policy: allowAll, RelayIPv4: loop4, LooseChannels: loose})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		b       []byte
		n, need int
		ok      bool
	}{
		{[]byte{0x40}, 0, 4, true},
		{[]byte{0x40, 0, 0, 5}, 12, 0, true},
		{[]byte{0x4F, 0xFF, 0, 0}, 4, 0, true},
		{[]byte{0x50, 0, 0, 1}, 8, 0, loose},
		{[]byte{0x7F, 0xFF, 0, 1}, 8, 0, loose},
		{[]byte{0x80, 0, 0, 0}, 0, 0, false},
	} {
		n, need, err := s.FrameOther(nullConn{}, tc.b) // a datagram socket
		if (err == nil) != tc.ok || (tc.ok && (n != tc.n || need != tc.need)) {
			t.Errorf("FrameOther(%x) = %d, %d, %v", tc.b, n, need, err)
		}
	}
}
