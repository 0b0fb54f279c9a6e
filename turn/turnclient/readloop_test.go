package turnclient

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// fakeServer answers Allocate without authentication and then lets the
// test send it arbitrary packets towards the client.
type fakeServer struct {
	conn   *net.UDPConn
	client chan netip.AddrPort
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{conn: c, client: make(chan netip.AddrPort, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		var m stun.Message
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if m.Parse(buf[:n]) != nil || m.Type.Class != stun.ClassRequest {
				continue
			}
			resp := stun.AppendHeader(nil, stun.Type{Method: m.Type.Method, Class: stun.ClassSuccess}, m.TransactionID)
			if m.Type.Method == stun.MethodAllocate {
				resp = stun.AppendXORAddress(resp, stun.AttrXORRelayedAddress, netip.MustParseAddrPort("192.0.2.7:40000"), m.TransactionID)
				resp = turn.AppendLifetime(resp, 600*time.Second)
				select {
				case f.client <- from:
				default:
				}
			}
			c.WriteToUDPAddrPort(resp, from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return f
}

// TestReadLoopSurvivesGarbage feeds the relay malformed and unexpected
// packets; it counts them and still delivers the valid Data indication
// that follows.
func TestReadLoopSurvivesGarbage(t *testing.T) {
	checkNoLeak(t)
	f := newFakeServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := Allocate(ctx, Config{Server: f.conn.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.LocalAddr().String(); got != "192.0.2.7:40000" {
		t.Fatalf("relayed %s", got)
	}
	client := <-f.client
	peer := netip.MustParseAddrPort("198.51.100.1:5000")
	id := stun.NewTransactionID()
	dataInd := func(withData bool) []byte {
		b := stun.AppendHeader(nil, stun.Type{Method: stun.MethodData, Class: stun.ClassIndication}, id)
		b = stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
		if withData {
			b = stun.AppendAttr(b, stun.AttrData, []byte("hello"))
		}
		return b
	}
	garbage := [][]byte{
		{},                                   // empty
		{0xff, 0x00, 0x12},                   // not STUN, not ChannelData
		{0x00, 0x01, 0x00, 0x08, 1, 2, 3, 4}, // truncated STUN header
		dataInd(true)[:24],                   // STUN cut short
		dataInd(false),                       // Data indication without DATA
		{0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4}, // ChannelData on an unbound channel
		{0x40, 0x00, 0x00, 0x10, 1, 2},       // ChannelData shorter than its length
		stun.AppendHeader(nil, stun.BindingIndication, id),                                           // unexpected indication
		stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassSuccess}, id), // response to nothing
		dataInd(true),
	}
	for _, g := range garbage {
		if _, err := f.conn.WriteToUDPAddrPort(g, client); err != nil {
			t.Fatal(err)
		}
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, from, err := r.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v (stats %+v)", err, r.Stats())
	}
	if string(buf[:n]) != "hello" || from.String() != peer.String() {
		t.Fatalf("got %q from %v, want hello from %v", buf[:n], from, peer)
	}
	st := r.Stats()
	// UDP preserves order on loopback: everything before the valid
	// indication was handled by now. The empty datagram and the stray
	// response are counted elsewhere (malformed; the STUN client's Unmatched).
	if st.Malformed < 4 || st.Unexpected != 1 || st.UnknownChannel != 1 || st.RecvIndications != 1 {
		t.Errorf("stats %+v: want ≥4 malformed, 1 unexpected, 1 unknown channel, 1 indication", st)
	}
	// A packet from a stranger is not taken for the server's.
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	stranger.WriteToUDPAddrPort(dataInd(true), client)
	f.conn.WriteToUDPAddrPort(dataInd(true), client)
	if _, _, err := r.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Foreign != 1 || st.RecvIndications != 2 {
		t.Errorf("stats %+v: want 1 foreign, 2 indications", st)
	}
}
