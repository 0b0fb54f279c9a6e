package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// target is the server under attack and the credentials of the attacker
// (a legitimate user misbehaving, as in every attack of issue 13 but the
// reflection).
type target struct {
	server    netip.AddrPort // loopback only
	tcpServer netip.AddrPort // the server's TCP address, for RFC 6062
	creds     turnload.Creds
}

// client is one 5-tuple towards the server.
type client struct {
	conn *net.UDPConn
	auth turnload.Auth
	kr   turnload.Keyring
}

func (t target) dial() (*client, error) {
	if !t.server.Addr().IsLoopback() {
		return nil, fmt.Errorf("refusing to attack %v: loopback targets only", t.server)
	}
	network := "udp4"
	if t.server.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(t.server))
	if err != nil {
		return nil, err
	}
	return &client{conn: c, kr: turnload.Keyring{Creds: t.creds}}, nil
}

func (c *client) close() { c.conn.Close() }

// do runs a request to its final answer: success, or the error code.
func (c *client) do(method stun.Method, build turnload.BuildFunc) (turnload.Reply, int, error) {
	r, err := turnload.Do(c.conn, method, build, &c.auth, &c.kr)
	if se, ok := errors.AsType[*stun.Error](err); ok {
		return r, se.Code, nil
	}
	return r, 0, err
}

// sendRaw sends b and returns the code of the answer with transaction ID
// id (0 for success), waiting at most wait.
func (c *client) sendRaw(b []byte, id stun.TransactionID, method stun.Method, wait time.Duration) (int, error) {
	if _, err := c.conn.Write(b); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for {
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(buf)
		if err != nil {
			return 0, err
		}
		var m stun.Message
		if !turnload.IsReplyTo(buf[:n], &id) || m.Parse(buf[:n]) != nil {
			continue
		}
		r, err := turnload.ParseReply(&m, method)
		if err != nil {
			continue
		}
		return r.Code, nil
	}
}

// counts tallies answers: 0 for success, else the error code.
type counts map[int]int

func (c counts) String() string {
	keys := make([]int, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		name := fmt.Sprint(k)
		switch k {
		case 0:
			name = "ok"
		case -16:
			name = "then_ok_16_more"
		}
		s += fmt.Sprintf(" %s=%d", name, c[k])
	}
	return s
}

// floodPeer is the i-th permission peer: 127.2.x.y:9. Permissions send
// nothing, and the policy of a server under test allows loopback or
// refuses it (403, counted like any refusal).
func floodPeer(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 2, byte(i >> 8), byte(i)}), 9)
}

// permissionFlood allocates and sends requests CreatePermissions with per
// peers each (issue 13, item 1: 300 a request until 100,000). It returns
// the answers and the allocation, for the junk flood.
func permissionFlood(t target, requests, per int) (counts, *client, netip.AddrPort, error) {
	c, err := t.dial()
	if err != nil {
		return nil, nil, netip.AddrPort{}, err
	}
	r, code, err := c.do(stun.MethodAllocate, turnload.AppendAllocate)
	if err != nil || code != 0 {
		c.close()
		return nil, nil, netip.AddrPort{}, fmt.Errorf("allocate: code %d: %v", code, err)
	}
	got := counts{}
	peers := make([]netip.AddrPort, per)
	for i := range requests {
		for j := range peers {
			peers[j] = floodPeer(i*per + j)
		}
		_, code, err := c.do(stun.MethodCreatePermission, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendCreatePermissions(b, id, peers, a)
		})
		if err != nil {
			c.close()
			return got, nil, netip.AddrPort{}, err
		}
		got[code]++
	}
	// Then as many permissions as the server grants, 16 at a time: the
	// junk flood meets the fullest table the server allows.
	for i := range requests {
		peers = peers[:16]
		for j := range peers {
			peers[j] = floodPeer(65536/2 + i*16 + j)
		}
		_, code, err := c.do(stun.MethodCreatePermission, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendCreatePermissions(b, id, peers, a)
		})
		if err != nil || code != 0 {
			break
		}
		got[-16]++ // granted fill requests
	}
	return got, c, r.Relayed, nil
}

// junk sends rate datagrams a second of junk to relayed from an
// unpermitted loopback socket, until stop is closed or limit are sent.
func junk(relayed netip.AddrPort, rate, limit int, stop <-chan struct{}) (int, error) {
	if !relayed.Addr().IsLoopback() {
		return 0, fmt.Errorf("refusing to send to %v: loopback only", relayed)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(relayed))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	payload := make([]byte, 100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	sent := 0
	for sent < limit {
		select {
		case <-stop:
			return sent, nil
		case <-tick.C:
		}
		for range perTick {
			c.Write(payload) // a refused datagram is the server's business
			sent++
		}
	}
	return sent, nil
}

// victim is another user's allocation with a channel to an echo peer on
// loopback: its round trip through the relay is the latency an attack
// costs bystanders.
type victim struct {
	c    *client
	peer *net.UDPConn
	wg   sync.WaitGroup
}

const victimChannel = 0x4000

func newVictim(t target) (*victim, error) {
	c, err := t.dial()
	if err != nil {
		return nil, err
	}
	peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.server.Addr(), 0)))
	if err != nil {
		c.close()
		return nil, err
	}
	v := &victim{c: c, peer: peer}
	pa := netx.AddrPort(peer.LocalAddr())
	if _, code, err := c.do(stun.MethodAllocate, turnload.AppendAllocate); err != nil || code != 0 {
		v.close()
		return nil, fmt.Errorf("victim allocate: code %d: %v", code, err)
	}
	if _, code, err := c.do(stun.MethodChannelBind, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
		return turnload.AppendChannelBind(b, id, victimChannel, pa, a)
	}); err != nil || code != 0 {
		v.close()
		return nil, fmt.Errorf("victim channel: code %d: %v", code, err)
	}
	v.wg.Add(1)
	go v.echo() // ends when close closes the socket
	return v, nil
}

func (v *victim) echo() {
	defer v.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := v.peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		v.peer.WriteToUDPAddrPort(buf[:n], from)
	}
}

func (v *victim) close() {
	v.c.close()
	v.peer.Close()
	v.wg.Wait()
}

// measure sends at least n pings through the relay, one at a time, and
// more until d has passed, and returns the 50th and 99th percentile round
// trip, and how many were lost (1 s each).
func (v *victim) measure(n int, d time.Duration) (p50, p99 time.Duration, lost int) {
	var rtts []time.Duration
	buf := make([]byte, 1500)
	msg := turn.AppendChannelData(nil, victimChannel, []byte("ping-ping-ping-ping"), false)
	end := time.Now().Add(d)
	for i := 0; i < n || time.Now().Before(end); i++ {
		start := time.Now()
		v.c.conn.Write(msg)
		v.c.conn.SetReadDeadline(start.Add(time.Second))
		for {
			k, err := v.c.conn.Read(buf)
			if err != nil {
				lost++
				break
			}
			if turn.IsChannelData(buf[:k], false) {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	if len(rtts) == 0 {
		return 0, 0, lost
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2], rtts[len(rtts)*99/100], lost
}

// reservationLoop runs Allocate with EVEN-PORT R=1 then Refresh 0, n times
// on fresh 5-tuples (issue 13, item 6): each success leaves a reserved
// port behind.
func reservationLoop(t target, n int) (counts, error) {
	got := counts{}
	for range n {
		c, err := t.dial()
		if err != nil {
			return got, err
		}
		_, code, err := c.do(stun.MethodAllocate, turnload.AppendAllocateReserve)
		if err == nil && code == 0 {
			_, _, err = c.do(stun.MethodRefresh, turnload.AppendDelete)
		}
		c.close()
		if err != nil {
			return got, err
		}
		got[code]++
	}
	return got, nil
}

// reflection is what one bare 20-byte request of a kind gets back.
type reflection struct {
	method   stun.Method
	req, out int // bytes
}

// reflect sends one bare request of each kind from a fresh socket and
// measures the answer (issue 13, item 7).
func reflect(t target) ([]reflection, error) {
	var out []reflection
	for _, m := range []stun.Method{stun.MethodBinding, stun.MethodAllocate, stun.MethodRefresh,
		stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodConnect, stun.MethodConnectionBind, stun.Method(0x0FF)} {
		c, err := t.dial()
		if err != nil {
			return out, err
		}
		b := turnload.AppendBare(nil, stun.NewTransactionID(), m)
		c.conn.Write(b)
		buf := make([]byte, 1500)
		c.conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.conn.Read(buf)
		c.close()
		if err != nil {
			n = 0
		}
		out = append(out, reflection{method: m, req: len(b), out: n})
	}
	return out, nil
}

// reflectFlood sends n bare Allocates from one socket and counts the
// answers that come back within a second of the last: the error-answer
// limit of the source address.
func reflectFlood(t target, n int) (answered, bytes int, err error) {
	c, err := t.dial()
	if err != nil {
		return 0, 0, err
	}
	defer c.close()
	for range n {
		c.conn.Write(turnload.AppendBare(nil, stun.NewTransactionID(), stun.MethodAllocate))
	}
	buf := make([]byte, 1500)
	for {
		c.conn.SetReadDeadline(time.Now().Add(time.Second))
		k, err := c.conn.Read(buf)
		if err != nil {
			return answered, bytes, nil
		}
		answered++
		bytes += k
	}
}

// replay captures signed requests and replays them (issue 13, item 3):
// an Allocate from another port of the same IP, and a Refresh with
// LIFETIME 0 after the client allocated again on the same 5-tuple. It
// returns the codes of the two replays and whether the re-made allocation
// survived.
func replay(t target) (crossPort, refreshZero int, survived bool, err error) {
	a, err := t.dial()
	if err != nil {
		return 0, 0, false, err
	}
	defer a.close()
	if _, _, err := a.do(stun.MethodAllocate, turnload.AppendAllocate); err != nil {
		return 0, 0, false, err
	}
	// The captured Allocate: signed by a, replayed from b.
	id := stun.NewTransactionID()
	signed := turnload.AppendAllocate(nil, id, &a.auth)
	b, err := t.dial()
	if err != nil {
		return 0, 0, false, err
	}
	defer b.close()
	if crossPort, err = b.sendRaw(signed, id, stun.MethodAllocate, time.Second); err != nil {
		return 0, 0, false, fmt.Errorf("cross-port replay: %w", err)
	}
	// The captured Refresh 0, then a re-Allocate on the same 5-tuple.
	id = stun.NewTransactionID()
	del := turnload.AppendDelete(nil, id, &a.auth)
	if code, err := a.sendRaw(del, id, stun.MethodRefresh, time.Second); err != nil || code != 0 {
		return 0, 0, false, fmt.Errorf("delete: code %d: %v", code, err)
	}
	time.Sleep(2 * time.Millisecond) // the nonce predates the deletion, as after any real call
	if _, code, err := a.do(stun.MethodAllocate, turnload.AppendAllocate); err != nil || code != 0 {
		return 0, 0, false, fmt.Errorf("re-allocate: code %d: %v", code, err)
	}
	if refreshZero, err = a.sendRaw(del, id, stun.MethodRefresh, time.Second); err != nil {
		return 0, 0, false, fmt.Errorf("refresh replay: %w", err)
	}
	survived, err = alive(a)
	return crossPort, refreshZero, survived, err
}

// alive reports whether c's allocation exists: a Refresh succeeds (437
// if not).
func alive(c *client) (bool, error) {
	_, code, err := c.do(stun.MethodRefresh, turnload.AppendRefresh)
	return err == nil && code == 0, err
}
