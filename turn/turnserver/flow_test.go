package turnserver

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestRelayFlow runs a whole session over real loopback sockets, over UDP
// and over TCP: Allocate, CreatePermission, Send and Data indications,
// ChannelBind, ChannelData both ways, Refresh, and deletion.
func TestRelayFlow(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			e := newEnv(t, nil)
			addr := e.udp
			if network == "tcp" {
				addr = e.tcp
			}
			c := dialClient(t, network, addr, "alice")
			m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP))
			c.checkOK(m)
			relayed, err := m.XORAddress(stun.AttrXORRelayedAddress)
			if err != nil || relayed.Addr() != loop4 || relayed.Port() < DefaultPortMin {
				t.Fatalf("XOR-RELAYED-ADDRESS %v (%v)", relayed, err)
			}
			if mapped, err := m.XORMappedAddress(); err != nil || mapped != c.local() {
				t.Errorf("XOR-MAPPED-ADDRESS %v (%v), want %v", mapped, err, c.local())
			}
			if v, _ := m.Get(stun.AttrLifetime); v == nil {
				t.Error("no LIFETIME")
			} else if d, _ := turn.ParseLifetime(v); d != DefaultLifetime {
				t.Errorf("LIFETIME %v, want %v", d, DefaultLifetime)
			}

			p := newPeer(t, loop4)
			// Without a permission, nothing passes either way.
			c.send(p.addr(), []byte("too early"))
			c.permit(p.addr())
			c.send(p.addr(), []byte("hello peer"))
			if got, from := p.recv(); string(got) != "hello peer" || from != relayed {
				t.Fatalf("peer got %q from %v, want \"hello peer\" from %v", got, from, relayed)
			}
			p.sendTo(relayed, []byte("hello client"))
			if r := c.recv(); string(r.data) != "hello client" || r.peer != p.addr() {
				t.Fatalf("client got %+v", r)
			}

			const ch = 0x4001
			c.bind(ch, p.addr())
			for _, size := range []int{0, 1, 5, 100, 1203} {
				payload := bytes.Repeat([]byte{byte(size)}, size)
				p.sendTo(relayed, payload)
				if r := c.recv(); r.channel != ch || !bytes.Equal(r.data, payload) {
					t.Fatalf("client got channel %#x %d bytes, want %#x %d bytes", r.channel, len(r.data), ch, size)
				}
				c.sendChannel(ch, payload)
				if got, _ := p.recv(); !bytes.Equal(got, payload) {
					t.Fatalf("peer got %d bytes, want %d", len(got), size)
				}
			}
			// A Send indication still works with a channel bound.
			c.send(p.addr(), []byte("send again"))
			if got, _ := p.recv(); string(got) != "send again" {
				t.Fatalf("peer got %q", got)
			}

			m = c.do(stun.MethodRefresh, lifetime(1800*time.Second))
			c.checkOK(m)
			if v, _ := m.Get(stun.AttrLifetime); v == nil {
				t.Error("no LIFETIME in the Refresh response")
			} else if d, _ := turn.ParseLifetime(v); d != 1800*time.Second {
				t.Errorf("LIFETIME %v, want 1800s", d)
			}

			// The peer and the client may read before the server counts.
			waitFor(t, "the counters", func() bool {
				st := e.turn.Stats()
				return st.ToPeerPackets == 7 && st.ToClientPackets == 6
			})
			st := e.turn.Stats()
			if st.Allocations != 1 || st.Permissions != 1 || st.Channels != 1 {
				t.Errorf("stats %+v", st)
			}
			if st.ToPeerPackets != 7 || st.ToClientPackets != 6 || st.DroppedNoPermission != 1 {
				t.Errorf("to peer %d, to client %d, dropped %d; want 7, 6, 1", st.ToPeerPackets, st.ToClientPackets, st.DroppedNoPermission)
			}

			c.checkOK(c.do(stun.MethodRefresh, lifetime(0)))
			if st := e.turn.Stats(); st.Allocations != 0 || st.ToPeerPackets != 7 {
				t.Errorf("after delete: %+v", st)
			}
			checkCode(t, c.do(stun.MethodRefresh), stun.CodeAllocationMismatch)
			if n := e.turn.ports[0].held(); n != 0 {
				t.Errorf("%d ports still held", n)
			}
		})
	}
}

// TestTCPConnectionCloseDeletes: an allocation made over TCP ends with the
// connection (RFC 8656, Section 3.1), and its connection is not closed for
// idleness while the allocation lives.
func TestTCPConnectionCloseDeletes(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "tcp", e.tcp, "alice")
	c.allocate()
	if st := e.turn.Stats(); st.Allocations != 1 {
		t.Fatalf("Allocations = %d", st.Allocations)
	}
	c.c.Close()
	deadline := time.Now().Add(ioWait)
	for e.turn.Stats().Allocations != 0 {
		if time.Now().After(deadline) {
			t.Fatal("allocation outlived its connection")
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
}

// TestDualAllocation: ADDITIONAL-ADDRESS-FAMILY gives an IPv4 and an IPv6
// relayed address; without an IPv6 relay the IPv4 half comes with
// ADDRESS-ERROR-CODE 440. RFC 8656, Section 7.2, step 9.
func TestDualAllocation(t *testing.T) {
	t.Run("both", func(t *testing.T) {
		e := newEnv(t, nil)
		c := dialClient(t, "udp", e.udp, "alice")
		m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP), additional(turn.FamilyIPv6))
		c.checkOK(m)
		var got []netip.AddrPort
		for _, a := range m.Attrs {
			if a.Type == stun.AttrXORRelayedAddress {
				ap, err := stun.ParseXORAddress(a.Value, m.TransactionID)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ap)
			}
		}
		if len(got) != 2 || got[0].Addr() != loop4 || got[1].Addr() != loop6 {
			t.Fatalf("relayed addresses %v", got)
		}
		// Both families relay.
		p4, p6 := newPeer(t, loop4), newPeer(t, loop6)
		c.permit(p4.addr(), p6.addr())
		c.send(p6.addr(), []byte("six"))
		if b, from := p6.recv(); string(b) != "six" || from != got[1] {
			t.Fatalf("IPv6 peer got %q from %v", b, from)
		}
		p4.sendTo(got[0], []byte("four"))
		if r := c.recv(); string(r.data) != "four" {
			t.Fatalf("client got %+v", r)
		}
		// Refresh of the IPv6 half with LIFETIME 0 deletes only it.
		c.checkOK(c.do(stun.MethodRefresh, family(turn.FamilyIPv6), lifetime(0)))
		checkCode(t, c.do(stun.MethodRefresh, family(turn.FamilyIPv6)), stun.CodePeerAddressFamilyMismatch)
		c.checkOK(c.do(stun.MethodRefresh, family(turn.FamilyIPv4)))
	})
	t.Run("no IPv6 relay", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RelayIPv6 = netip.Addr{} })
		c := dialClient(t, "udp", e.udp, "alice")
		m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP), additional(turn.FamilyIPv6))
		c.checkOK(m)
		v, ok := m.Get(stun.AttrAddressErrorCode)
		if !ok {
			t.Fatal("no ADDRESS-ERROR-CODE")
		}
		f, code, _, err := turn.ParseAddressErrorCode(v)
		if err != nil || f != turn.FamilyIPv6 || code != stun.CodeAddressFamilyNotSupported {
			t.Errorf("ADDRESS-ERROR-CODE %v %d (%v)", f, code, err)
		}
		checkCode(t, dialClient(t, "udp", e.udp, "alice").do(stun.MethodAllocate, transport(turn.ProtoUDP), family(turn.FamilyIPv6)),
			stun.CodeAddressFamilyNotSupported)
	})
}

// TestEvenPortReservation: EVEN-PORT gives an even port; with the R bit
// the next port is reserved under a RESERVATION-TOKEN, which a later
// Allocate redeems, and which expires. RFC 8656, Section 7.2.
func TestEvenPortReservation(t *testing.T) {
	e := newEnv(t, nil)
	c := dialClient(t, "udp", e.udp, "alice")
	m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP), evenPort(true))
	c.checkOK(m)
	relayed, _ := m.XORAddress(stun.AttrXORRelayedAddress)
	if relayed.Port()%2 != 0 {
		t.Errorf("port %d is odd", relayed.Port())
	}
	v, ok := m.Get(stun.AttrReservationToken)
	if !ok {
		t.Fatal("no RESERVATION-TOKEN")
	}
	tok, _ := turn.ParseReservationToken(v)
	if st := e.turn.Stats(); st.Reservations != 1 {
		t.Errorf("Reservations = %d", st.Reservations)
	}
	c2 := dialClient(t, "udp", e.udp, "alice")
	second := c2.allocate(token(tok))
	if second.Port() != relayed.Port()+1 {
		t.Errorf("token gave port %d, want %d", second.Port(), relayed.Port()+1)
	}
	// The token is spent.
	checkCode(t, dialClient(t, "udp", e.udp, "alice").do(stun.MethodAllocate, transport(turn.ProtoUDP), token(tok)),
		stun.CodeInsufficientCapacity)

	// An unredeemed reservation expires after 30 s.
	c3 := dialClient(t, "udp", e.udp, "bob")
	m = c3.do(stun.MethodAllocate, transport(turn.ProtoUDP), evenPort(true))
	c3.checkOK(m)
	v, _ = m.Get(stun.AttrReservationToken)
	tok, _ = turn.ParseReservationToken(v)
	e.clock.Advance(ReservationLifetime + time.Second)
	e.turn.sweep()
	if st := e.turn.Stats(); st.Reservations != 0 {
		t.Errorf("Reservations = %d after expiry", st.Reservations)
	}
	checkCode(t, dialClient(t, "udp", e.udp, "bob").do(stun.MethodAllocate, transport(turn.ProtoUDP), token(tok)),
		stun.CodeInsufficientCapacity)
}
