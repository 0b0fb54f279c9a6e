package turnserver

import (
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestRelayNoAllocs proves that relaying allocates nothing per packet, in
// both directions and in every form: ChannelData and Send indications from
// the client, Data indications and ChannelData to the client. Quotas are
// on, so the bucket is exercised too.
func TestRelayNoAllocs(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Quotas.BandwidthPerAllocation = 1 << 40
		c.Quotas.BandwidthPerUser = 1 << 40
	})
	c := dialClient(t, "udp", e.udp, "alice")
	c.allocate()
	p := newPeer(t, loop4)
	bound, unbound := p.addr(), newPeer(t, loop4).addr()
	c.permit(bound, unbound)
	c.bind(0x4000, bound)
	a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
	if a == nil {
		t.Fatal("allocation not found")
	}
	req := &stunserver.Request{From: c.local(), Local: e.udp, Network: "udp", Conn: a.conn}
	payload := make([]byte, 1200)

	frame := turn.AppendChannelData(nil, 0x4000, payload, false)
	send := c.build(stun.Type{Method: stun.MethodSend, Class: stun.ClassIndication}, stun.NewTransactionID(), false, peerAttr(unbound), dataAttr(payload))
	var msg stun.Message
	if err := msg.Parse(send); err != nil {
		t.Fatal(err)
	}
	sendReq := *req
	sendReq.Msg = &msg
	out := make([]byte, 0, 2048)
	r := a.relays[0].Load()
	slot, rng := newSlot()

	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"ChannelData to peer", func() { e.turn.ServeOther(req, frame) }},
		{"Send indication to peer", func() { e.turn.ServeSTUN(out[:0], &sendReq) }},
		{"ChannelData to client", func() { r.fromPeer(slot, len(payload), bound, rng) }},
		{"Data indication to client", func() { r.fromPeer(slot, len(payload), unbound, rng) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.turn.Stats()
			if n := testing.AllocsPerRun(500, tc.f); n != 0 {
				t.Errorf("%v allocations per packet", n)
			}
			after := e.turn.Stats()
			if after.ToPeerPackets+after.ToClientPackets <= before.ToPeerPackets+before.ToClientPackets {
				t.Error("nothing was relayed")
			}
		})
	}
}

func BenchmarkChannelDataToPeer(b *testing.B) {
	e := newEnv(b, nil)
	c := dialClient(b, "udp", e.udp, "alice")
	c.allocate()
	p := newPeer(b, loop4)
	c.bind(0x4000, p.addr())
	a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
	req := &stunserver.Request{From: c.local(), Local: e.udp, Network: "udp", Conn: a.conn}
	frame := turn.AppendChannelData(nil, 0x4000, make([]byte, 160), false)
	b.ReportAllocs()
	for b.Loop() {
		e.turn.ServeOther(req, frame)
	}
}

func BenchmarkPeerToChannelData(b *testing.B) {
	e := newEnv(b, nil)
	c := dialClient(b, "udp", e.udp, "alice")
	c.allocate()
	p := newPeer(b, loop4)
	c.bind(0x4000, p.addr())
	a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
	r := a.relays[0].Load()
	slot, rng := newSlot()
	b.ReportAllocs()
	for b.Loop() {
		r.fromPeer(slot, 160, p.addr(), rng)
	}
}

// TestPollerReadPathNoAllocs measures the whole receive path of relay
// sockets (epoll, recvfrom, Data indication, send to the client) on real
// sockets: the process's heap allocations over 2000 peer datagrams, which
// the poller goroutine handles while the test goroutine sends and reads
// without allocating.
func TestPollerReadPathNoAllocs(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	relayed := c.allocate()
	p := newPeer(t, loop4)
	c.permit(p.addr())
	payload := make([]byte, 200)
	buf := make([]byte, 1500)
	relay := func(n int) {
		c.c.SetReadDeadline(time.Now().Add(ioWait))
		for range n { // one in flight: no buffer overflows
			p.sendTo(relayed, payload)
			if _, err := c.c.Read(buf); err != nil {
				t.Fatalf("datagram not relayed: %v", err)
			}
		}
	}
	relay(100) // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 2000
	relay(n)
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.01 {
		t.Errorf("%.3f allocations per relayed datagram", per)
	}
}
