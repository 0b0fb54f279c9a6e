//go:build linux

package turnserver

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestChannelDataBatchGSO relays runs of equal-size ChannelData and mixed
// sizes to a loopback peer: with UDP GSO, and after the kernel refused it
// (SO_NO_CHECK on the relay socket makes a GSO send fail with EINVAL).
// Every datagram arrives whole and in order, and the counters agree.
func TestChannelDataBatchGSO(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse=%v", refuse), func(t *testing.T) {
			e := newEnv(t, nil)
			c := dialClient(t, "udp", e.udp, "alice")
			c.allocate()
			p := newPeer(t, loop4)
			p.c.SetReadBuffer(4 << 20)
			c.bind(0x4000, p.addr())
			a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
			if a == nil {
				t.Fatal("allocation not found")
			}
			r := a.relayFor(p.addr().Addr())
			if r == nil || r.tgt == nil {
				t.Fatal("no batched relay socket")
			}
			if !r.tgt.GSO() {
				t.Skip("no UDP GSO on this kernel")
			}
			if refuse {
				rc, err := r.conn.SyscallConn()
				if err != nil {
					t.Fatal(err)
				}
				var serr error
				rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_NO_CHECK, 1) })
				if serr != nil {
					t.Skipf("SO_NO_CHECK: %v", serr)
				}
			}
			req := &stunserver.Request{From: c.local(), Local: e.udp, Network: "udp", Conn: a.conn}
			var sizes []int
			for range 80 {
				sizes = append(sizes, 100) // more than a batch: the overflow flushes early
			}
			sizes = append(sizes, 40, 300, 300, 300, 1000, 1000, 20, 20, 20, 8)
			for range 30 {
				sizes = append(sizes, 200)
			}
			b := e.turn.NewOtherBatch()
			before := e.turn.Stats()
			var want [][]byte
			var bytes int
			for i, n := range sizes {
				d := fmt.Appendf(nil, "%03d", i)
				d = append(d, make([]byte, n-len(d))...)
				want = append(want, d)
				bytes += n
				b.ServeOther(req, turn.AppendChannelData(nil, 0x4000, d, false))
				if i == 100 {
					b.Flush()
				}
			}
			b.Flush()
			for i, w := range want {
				got, from := p.recv()
				if string(got) != string(w) || from != r.local {
					t.Fatalf("datagram %d: %d bytes %.3q from %v, want %d bytes %.3q from %v", i, len(got), got, from, len(w), w, r.local)
				}
			}
			after := e.turn.Stats()
			if got := after.ToPeerPackets - before.ToPeerPackets; got != uint64(len(sizes)) {
				t.Errorf("ToPeerPackets grew by %d, want %d", got, len(sizes))
			}
			if got := after.ToPeerBytes - before.ToPeerBytes; got != uint64(bytes) {
				t.Errorf("ToPeerBytes grew by %d, want %d", got, bytes)
			}
			if after.SendErrors != before.SendErrors {
				t.Errorf("SendErrors grew by %d", after.SendErrors-before.SendErrors)
			}
			wantOff := uint64(0)
			if refuse {
				wantOff = 1
			}
			if got := after.GSODisabled - before.GSODisabled; got != wantOff || r.tgt.GSO() == refuse {
				t.Errorf("GSODisabled grew by %d and GSO() = %v; want %d and %v", got, r.tgt.GSO(), wantOff, !refuse)
			}
		})
	}
}

// TestPollerBatchNoAllocs proves that a relay poller's whole read path
// allocates nothing: udpio.Poller's drain (epoll_wait, recvfrom into its
// arena) and the relay handler's batch to the clients (ChannelData and
// Data indications built in the slots, sent at Flush with one Sender.Send
// for the relays of two allocations on one listening socket), and with six
// relays ready at once the poller's reads of one datagram from each with
// one io_uring_enter. The relay sockets are moved to a poller that the
// test drives with PollNow.
func TestPollerBatchNoAllocs(t *testing.T) {
	for _, nRelays := range []int{2, 6} {
		t.Run(fmt.Sprintf("%d relays", nRelays), func(t *testing.T) { testPollerBatchNoAllocs(t, nRelays) })
	}
}

func testPollerBatchNoAllocs(t *testing.T, nRelays int) {
	e := newEnv(t, nil)
	p, err := newRelayPoller(e.turn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	bound, unbound := newPeer(t, loop4), newPeer(t, loop4)
	var relays []*relay
	var clients []*client
	for range nRelays {
		c := dialClient(t, "udp", e.udp, "alice")
		c.allocate()
		c.permit(bound.addr(), unbound.addr())
		c.bind(0x4000, bound.addr())
		a := e.turn.allocs.get(fiveTuple{c.local(), e.udp, transportUDP})
		if a == nil || a.ctgt == nil {
			t.Fatal("no UDP allocation with a batched client socket")
		}
		r := a.relays[0].Load()
		e.turn.mu.Lock() // r.rd is written under it (commit)
		r.stopReading()
		reg, err := p.Add(r.conn, r)
		r.rd = relayReader{p: p, reg: reg} // removed from p when the relay closes
		e.turn.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, r)
		clients = append(clients, c)
	}
	payload := make([]byte, 160)
	perBatch := 4 * nRelays
	batch := func() {
		for i := range perBatch {
			from := bound
			if i%4 == 3 {
				from = unbound
			}
			from.c.WriteToUDPAddrPort(payload, relays[i%nRelays].local)
		}
		// Loopback delivers before the send returns; the bound only
		// keeps a lost datagram from hanging the test.
		for got, polls := 0, 0; got < perBatch && polls < 1e6; polls++ {
			got += p.PollNow()
		}
	}
	before := e.turn.Stats()
	if n := testing.AllocsPerRun(100, batch); n != 0 {
		t.Errorf("%v allocations per batch", n)
	}
	after := e.turn.Stats()
	if got := after.ToClientPackets - before.ToClientPackets; got != uint64(101*perBatch) {
		t.Errorf("ToClientPackets grew by %d, want %d", got, 101*perBatch)
	}
	for i, c := range clients {
		if r := c.recv(); len(r.data) != len(payload) {
			t.Errorf("client %d got %d bytes, want %d", i, len(r.data), len(payload))
		}
	}
}
