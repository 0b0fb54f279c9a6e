package turnserver

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestChannelDataBatch queues ChannelData of two allocations, interleaved,
// and checks that Flush delivers each relay's messages in order, counts
// them, drops what has no channel, and allocates nothing.
func TestChannelDataBatch(t *testing.T) {
	e := newEnv(t, nil)
	var reqs [2]*stunserver.Request
	var peers [2]*peer
	for i, user := range []string{"alice", "bob"} {
		c := dialClient(t, "udp", e.udp, user)
		c.allocate()
		peers[i] = newPeer(t, loop4)
		c.bind(0x4000, peers[i].addr())
		a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
		if a == nil {
			t.Fatal("allocation not found")
		}
		reqs[i] = &stunserver.Request{From: c.local(), Local: e.udp, Network: "udp", Conn: a.conn}
	}
	b := e.turn.NewOtherBatch()
	const n = 5
	before := e.turn.Stats()
	for j := range n {
		for i := range reqs {
			b.ServeOther(reqs[i], turn.AppendChannelData(nil, 0x4000, fmt.Appendf(nil, "%d-%d", i, j), false))
		}
	}
	b.ServeOther(reqs[0], turn.AppendChannelData(nil, 0x4001, []byte("unbound"), false))
	b.Flush()
	b.Flush() // nothing left: sends nothing more
	after := e.turn.Stats()
	if got := after.ToPeerPackets - before.ToPeerPackets; got != 2*n {
		t.Errorf("ToPeerPackets grew by %d, want %d", got, 2*n)
	}
	if got := after.ToPeerBytes - before.ToPeerBytes; got != 2*n*3 {
		t.Errorf("ToPeerBytes grew by %d, want %d", got, 2*n*3)
	}
	if got := after.DroppedNoPermission - before.DroppedNoPermission; got != 1 {
		t.Errorf("DroppedNoPermission grew by %d, want 1", got)
	}
	for i, p := range peers {
		for j := range n {
			got, _ := p.recv()
			if want := fmt.Sprintf("%d-%d", i, j); string(got) != want {
				t.Errorf("peer %d got %q, want %q", i, got, want)
			}
		}
	}

	frames := [][]byte{
		turn.AppendChannelData(nil, 0x4000, make([]byte, 100), false),
		turn.AppendChannelData(nil, 0x4000, make([]byte, 200), false),
	}
	allocs := testing.AllocsPerRun(200, func() {
		for i := range 4 {
			b.ServeOther(reqs[i%2], frames[i%2])
		}
		b.Flush()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

// TestChannelDataBatchFull queues more than a batch holds: the overflow
// flushes early and nothing is lost.
func TestChannelDataBatchFull(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	p := newPeer(t, loop4)
	c.bind(0x4000, p.addr())
	a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
	req := &stunserver.Request{From: c.local(), Local: e.udp, Network: "udp", Conn: a.conn}
	b := e.turn.NewOtherBatch()
	const n = maxPending + 10
	for j := range n {
		b.ServeOther(req, turn.AppendChannelData(nil, 0x4000, fmt.Appendf(nil, "%03d", j), false))
	}
	b.Flush()
	for j := range n {
		got, _ := p.recv()
		if want := fmt.Sprintf("%03d", j); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// TestRelayToClientBurst sends a burst from two peers to the relayed
// address: runs of one size, mixed sizes and datagrams large enough that
// a relay reader's batch fills up and goes out early. The client gets
// every one, whole and in order, as ChannelData from the bound peer and
// as Data indications from the other, and the counters agree.
func TestRelayToClientBurst(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	relayed := c.allocate()
	c.c.(*net.UDPConn).SetReadBuffer(4 << 20)
	bound, other := newPeer(t, loop4), newPeer(t, loop4)
	bound.c.SetWriteBuffer(4 << 20)
	c.permit(other.addr())
	c.bind(0x4000, bound.addr())
	type dgram struct {
		from *peer
		data []byte
	}
	var burst []dgram
	var bytes int
	add := func(p *peer, n, size int) {
		for range n {
			d := fmt.Appendf(nil, "%03d", len(burst))
			d = append(d, make([]byte, size-len(d))...)
			burst = append(burst, dgram{p, d})
			bytes += size
		}
	}
	add(bound, 100, 100)
	add(bound, 1, 40)
	add(bound, 5, 1000)
	add(bound, 3, 60000)
	add(bound, 20, 200)
	add(other, 3, 100)
	before := e.turn.Stats()
	for _, d := range burst {
		d.from.sendTo(relayed, d.data)
	}
	// Each peer's datagrams arrive in its order; the two peers' may
	// interleave.
	next := map[*peer]int{bound: 0, other: 0}
	for range burst {
		got := c.recv()
		p := bound
		if got.channel == 0 {
			p = other
			if got.peer != other.addr() {
				t.Fatalf("Data indication from %v, want %v", got.peer, other.addr())
			}
		} else if got.channel != 0x4000 {
			t.Fatalf("ChannelData on channel %#x", got.channel)
		}
		for next[p] < len(burst) && burst[next[p]].from != p {
			next[p]++
		}
		if next[p] == len(burst) {
			t.Fatalf("unexpected datagram %.3q", got.data)
		}
		if want := burst[next[p]].data; string(got.data) != string(want) {
			t.Fatalf("got %d bytes %.3q, want %d bytes %.3q", len(got.data), got.data, len(want), want)
		}
		next[p]++
	}
	after := e.turn.Stats()
	if got := after.ToClientPackets - before.ToClientPackets; got != uint64(len(burst)) {
		t.Errorf("ToClientPackets grew by %d, want %d", got, len(burst))
	}
	if got := after.ToClientBytes - before.ToClientBytes; got != uint64(bytes) {
		t.Errorf("ToClientBytes grew by %d, want %d", got, bytes)
	}
	if after.ClientSendErrors != before.ClientSendErrors || after.GSODisabled != before.GSODisabled {
		t.Errorf("ClientSendErrors grew by %d, GSODisabled by %d", after.ClientSendErrors-before.ClientSendErrors, after.GSODisabled-before.GSODisabled)
	}
}

// TestChannelDataBeforeRefreshZero: a client writes ChannelData and then,
// at once, a Refresh with LIFETIME 0: the server reads them in one
// receive batch more often than not, and must relay the data before it
// deletes the allocation (RFC 8656, Section 7.3), as a client that ends a
// session expects (an ICE agent closing after its last packet). Over UDP
// the order of a client's messages is the order they take effect.
func TestChannelDataBeforeRefreshZero(t *testing.T) {
	e := newEnv(t, nil)
	const rounds, n = 10, 20
	for r := range rounds {
		c := dialClient(t, "udp", e.udp, "alice")
		c.allocate()
		p := newPeer(t, loop4)
		c.bind(0x4000, p.addr())
		id := stun.NewTransactionID()
		refresh := c.build(stun.Type{Method: stun.MethodRefresh, Class: stun.ClassRequest}, id, true, lifetime(0))
		for i := range n {
			c.sendChannel(0x4000, fmt.Appendf(nil, "%d-%d", r, i))
		}
		c.checkOK(c.roundTrip(refresh, id))
		for i := range n {
			if got, _ := p.recv(); string(got) != fmt.Sprintf("%d-%d", r, i) {
				t.Fatalf("round %d: the peer got %q, want %d-%d", r, got, r, i)
			}
		}
	}
}

// TestChannelDataBatchSpread queues one ChannelData message for each of
// many allocations, the shape of many allocations at modest rates: Flush
// sends them together (udpio.Sender.SendSpread), each from its own relay
// to its own peer, counts them, and allocates nothing.
func TestChannelDataBatchSpread(t *testing.T) {
	e := newEnv(t, nil)
	const n = 6
	var reqs []*stunserver.Request
	var peers []*peer
	var relays []netip.AddrPort
	for range n {
		c := dialClient(t, "udp", e.udp, "alice")
		c.allocate()
		p := newPeer(t, loop4)
		c.bind(0x4000, p.addr())
		a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
		if a == nil {
			t.Fatal("allocation not found")
		}
		reqs = append(reqs, &stunserver.Request{From: c.local(), Local: e.udp, Network: "udp", Conn: a.conn})
		peers = append(peers, p)
		relays = append(relays, a.relays[0].Load().local)
	}
	b := e.turn.NewOtherBatch()
	before := e.turn.Stats()
	for i := range reqs {
		b.ServeOther(reqs[i], turn.AppendChannelData(nil, 0x4000, fmt.Appendf(nil, "to %d", i), false))
	}
	b.Flush()
	after := e.turn.Stats()
	if got := after.ToPeerPackets - before.ToPeerPackets; got != n {
		t.Errorf("ToPeerPackets grew by %d, want %d", got, n)
	}
	if got := after.ToPeerBytes - before.ToPeerBytes; got != n*4 {
		t.Errorf("ToPeerBytes grew by %d, want %d", got, n*4)
	}
	for i, p := range peers {
		got, from := p.recv()
		if want := fmt.Sprintf("to %d", i); string(got) != want || from != relays[i] {
			t.Errorf("peer %d got %q from %v, want %q from %v", i, got, from, want, relays[i])
		}
	}
	frame := turn.AppendChannelData(nil, 0x4000, make([]byte, 100), false)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range reqs {
			b.ServeOther(reqs[i], frame)
		}
		b.Flush()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}
