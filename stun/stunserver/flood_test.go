package stunserver

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// badInputs are datagrams the server must count as malformed and drop.
func badInputs() map[string][]byte {
	id := stun.NewTransactionID()
	good := func() []byte { return request(stun.BindingRequest, id, true) }
	in := map[string][]byte{
		"empty":            {},
		"truncated header": good()[:10],
		"top bits set":     append([]byte{0xc0}, good()[1:]...),
		"http":             []byte("GET / HTTP/1.1\r\n\r\n"),
	}
	b := good()
	binary.BigEndian.PutUint16(b[2:4], 6)
	in["length not a multiple of 4"] = b
	b = good()
	binary.BigEndian.PutUint16(b[2:4], 400)
	in["length beyond the datagram"] = b
	b = append(good(), 0, 0, 0, 0)
	in["trailing bytes"] = b
	b = stun.AppendHeader(nil, stun.BindingRequest, id)
	b = append(b, 0x80, 0x22, 0x00, 0xc8, 'x', 'x', 'x', 'x') // SOFTWARE claims 200 bytes
	binary.BigEndian.PutUint16(b[2:4], 8)
	in["attribute length overflows"] = b
	b = stun.AppendHeader(nil, stun.BindingRequest, id)
	b = append(b, 0x80, 0x22, 0x00)
	in["half an attribute header"] = b
	b = good()
	b[len(b)-1] ^= 0x40
	in["wrong FINGERPRINT"] = b
	b = stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, id))
	b = stun.AppendAttrString(b, stun.AttrSoftware, "late")
	in["FINGERPRINT not last"] = b
	b = stun.AppendHeader(nil, stun.BindingRequest, id)
	b = stun.AppendAttr(b, stun.AttrMessageIntegrity, make([]byte, 19))
	in["MESSAGE-INTEGRITY of 19 bytes"] = stun.AppendFingerprint(b)
	b = stun.AppendHeader(nil, stun.BindingRequest, id)
	b = stun.AppendAttr(b, stun.AttrMessageIntegritySHA256, make([]byte, 12))
	in["MESSAGE-INTEGRITY-SHA256 of 12 bytes"] = stun.AppendFingerprint(b)
	in["oversized datagram"] = make([]byte, MaxMessageSize+100)
	return in
}

// TestBadInputFlood sends every kind of bad datagram, then 10,000 random
// ones from a fixed seed, and checks that the server counted them, never
// answered them, and still answers a good request.
func TestBadInputFlood(t *testing.T) {
	s := startServer(t, Config{UDP: loop4, UDPSockets: 2, Software: "icebreaker"})
	to := endpoint(t, s, "udp", RolePrimary)
	c := udpClient(t, ip1)
	sentinel := func(t *testing.T) {
		t.Helper()
		id := stun.NewTransactionID()
		m, _ := exchange(t, c, to, request(stun.BindingRequest, id, true))
		checkSuccess(t, m, id, udpLocal(c))
	}

	for name, pkt := range badInputs() {
		t.Run(name, func(t *testing.T) {
			before := s.Stats().Malformed
			if _, err := c.WriteToUDPAddrPort(pkt, to); err != nil {
				t.Fatal(err)
			}
			sentinel(t) // answered first: the bad datagram got no answer
			if got := s.Stats().Malformed; got != before+1 {
				t.Errorf("Malformed went from %d to %d", before, got)
			}
		})
	}

	t.Run("wrong cookie is a classic request", func(t *testing.T) {
		id := stun.NewTransactionID()
		b := request(stun.BindingRequest, id, false)
		binary.BigEndian.PutUint32(b[4:8], 0xdeadbeef)
		m, _ := exchange(t, c, to, b)
		if !m.Classic || m.Cookie != 0xdeadbeef || m.TransactionID != id || m.Type != stun.BindingSuccess {
			t.Errorf("response %v classic=%v cookie=%#x", m.Type, m.Classic, m.Cookie)
		}
	})

	t.Run("10000 random datagrams", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5780, 8489))
		before := s.Stats()
		buf := make([]byte, 600)
		const count = 10000
		// The random requests that happen to be well formed get answers;
		// the sentinel skips them.
		sentinel := func(t *testing.T) {
			t.Helper()
			id := stun.NewTransactionID()
			if _, err := c.WriteToUDPAddrPort(request(stun.BindingRequest, id, true), to); err != nil {
				t.Fatal(err)
			}
			for {
				if m, _ := readMsg(t, c); m.TransactionID == id {
					checkSuccess(t, m, id, udpLocal(c))
					return
				}
			}
		}
		for i := range count {
			n := rng.IntN(len(buf))
			for j := range buf[:n] {
				buf[j] = byte(rng.Uint32())
			}
			if i%2 == 0 && n >= stun.HeaderSize {
				// Half look like STUN on the surface: a request type, the
				// cookie and a consistent length, random attributes.
				n &^= 3
				binary.BigEndian.PutUint16(buf[0:2], stun.BindingRequest.Value())
				binary.BigEndian.PutUint16(buf[2:4], uint16(n-stun.HeaderSize))
				binary.BigEndian.PutUint32(buf[4:8], stun.MagicCookie)
			}
			if _, err := c.WriteToUDPAddrPort(buf[:n], to); err != nil {
				t.Fatal(err)
			}
			if i%100 == 99 {
				sentinel(t) // pace the flood so that the socket buffer cannot overflow
			}
		}
		sentinel(t)
		after := s.Stats()
		handled := (after.Malformed - before.Malformed) + (after.Requests - before.Requests) + (after.Dropped - before.Dropped)
		if after.Malformed == before.Malformed {
			t.Error("no random datagram counted as malformed")
		}
		// Every datagram is accounted for: malformed, dropped, or a request
		// (the sentinels and any random datagram that happens to be one).
		if handled < count {
			t.Errorf("accounted for %d datagrams of %d (+101 sentinels)", handled, count)
		}
		t.Logf("random flood: %d malformed, %d requests, %d dropped",
			after.Malformed-before.Malformed, after.Requests-before.Requests, after.Dropped-before.Dropped)
	})
}

// TestBadInputFloodTCP sends each bad input on its own TCP connection; the
// server drops each connection (or the message) and keeps serving.
func TestBadInputFloodTCP(t *testing.T) {
	s := startServer(t, Config{TCP: loop4})
	good := dialTCP(t, s)
	for name, pkt := range badInputs() {
		switch name {
		case "trailing bytes", "half an attribute header", "oversized datagram":
			// On a stream these are a good message and the start of the next.
			continue
		}
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", endpoint(t, s, "tcp", RolePrimary).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(pkt)
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(ioWait))
			var b [1]byte
			if n, err := c.Read(b[:]); err == nil {
				t.Errorf("server answered %d bytes to a bad message", n)
			}
			id := stun.NewTransactionID()
			checkSuccess(t, streamExchange(t, good, request(stun.BindingRequest, id, true)), id, localAddr(good))
		})
	}
}
