package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/turn"
)

// -mode many: the shape of real TURN traffic, many allocations at modest
// rates. Each of -allocs clients allocates a relayed address RA_i and binds
// a channel to a peer socket of its own, connected to RA_i. Traffic goes
// both ways: the client sends ChannelData, relayed to its peer, and the
// peer sends plain datagrams to RA_i, relayed to the client as
// ChannelData. A rate is per allocation, both directions together, so
// the server relays allocs*rate packets per second. Packet k of the run
// goes out on socket k mod 2*allocs (client 0, peer 0, client 1, ...), so
// every socket carries rate/2 packets per second.
//
// Every socket has a reader goroutine that counts this run's packets;
// server_us_per_packet is the server's CPU time over the run divided by
// every packet of the run that arrived, warmup included.

// counts is what the readers of a run saw.
type counts struct {
	measured, all, stray int
}

// tally counts one datagram p that socket i received: ChannelData on a
// client's socket (even i), plain data on a peer's.
func (c *counts) tally(i int, p []byte, token uint64) {
	if i%2 == 0 {
		_, d, err := turn.ParseChannelData(p)
		if err != nil {
			c.stray++
			return
		}
		p = d
	}
	if len(p) < 9 || binary.BigEndian.Uint64(p) != token {
		c.stray++
		return
	}
	c.all++
	if p[8] == phaseMeasured {
		c.measured++
	}
}

// maxAllocs bounds -allocs: two sockets each here, one relay socket each in
// the server.
const maxAllocs = 2000

// manyRig is a ready set of allocations, owned by the goroutine that made
// it.
type manyRig struct {
	cfg     config
	clients []*net.UDPConn // connected to the server
	peers   []*net.UDPConn // peer i connected to client i's relayed address
	token   uint64
}

func (m *manyRig) close() {
	for _, c := range append(m.clients, m.peers...) {
		_ = c.Close()
	}
}

// setupMany allocates and binds -allocs relays, then checks that a packet
// gets through each, both ways.
func setupMany(cfg config) (*manyRig, error) {
	m := &manyRig{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			m.close()
		}
	}()
	kr := &turnload.Keyring{Creds: cfg.creds}
	r := &rig{cfg: cfg}
	for i := range cfg.allocs {
		c := &client{}
		var err error
		if c.conn, err = r.dial(cfg.server); err != nil {
			return nil, err
		}
		m.clients = append(m.clients, c.conn)
		if err := c.allocate(kr); err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		p, err := net.DialUDP("udp", &net.UDPAddr{IP: cfg.server.Addr().AsSlice()}, net.UDPAddrFromAddrPort(c.relayed))
		if err != nil {
			return nil, fmt.Errorf("peer socket %d: %w", i, err)
		}
		m.peers = append(m.peers, p)
		_ = p.SetReadBuffer(sockBuf)
		_ = p.SetWriteBuffer(sockBuf)
		peer := p.LocalAddr().(*net.UDPAddr).AddrPort()
		if err := c.bind(kr, cfg.channel, netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())); err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
	}
	if err := m.probe(); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// probe sends one packet each way through every allocation, retrying for
// at most 2 s per allocation.
func (m *manyRig) probe() error {
	data := make([]byte, m.cfg.size)
	copy(data, "relayload probe")
	msg := turn.AppendChannelData(nil, m.cfg.channel, data, false)
	buf := make([]byte, 2048)
	through := func(send, recv *net.UDPConn, b []byte, want func([]byte) bool) bool {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := send.Write(b); err != nil {
				return false
			}
			_ = recv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				n, err := recv.Read(buf)
				if err != nil {
					break
				}
				if want(buf[:n]) {
					_ = recv.SetReadDeadline(time.Time{})
					return true
				}
			}
		}
		return false
	}
	isProbe := func(b []byte) bool { return len(b) == len(data) && string(b[:15]) == "relayload probe" }
	for i := range m.clients {
		if !through(m.clients[i], m.peers[i], msg, isProbe) {
			return fmt.Errorf("probe: nothing came from client %d to its peer within 2s", i)
		}
		fromPeer := func(b []byte) bool {
			_, d, err := turn.ParseChannelData(b)
			return err == nil && isProbe(d)
		}
		if !through(m.peers[i], m.clients[i], data, fromPeer) {
			return fmt.Errorf("probe: nothing came from peer %d to its client within 2s", i)
		}
	}
	return nil
}

// Payload layout: run token (8 bytes), then 1 for a measured packet, 0 for
// a warmup one.
const (
	phaseWarm     = 0
	phaseMeasured = 1
)

// run offers rate packets per second per allocation for warmup plus
// duration and counts what arrives.
func (m *manyRig) run(ctx context.Context, rate int) (result, error) {
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	m.token = binary.BigEndian.Uint64(tok[:])
	n := len(m.clients)
	total := rate * n // packets per second, all sockets together
	warm := int(float64(total) * m.cfg.warmup.Seconds())
	counted := max(1, int(float64(total)*m.cfg.duration.Seconds()))
	res := result{label: m.cfg.label, mode: "many", allocs: n, offered: rate, counted: counted}

	socks := make([]*net.UDPConn, 0, 2*n)
	for i := range n {
		socks = append(socks, m.clients[i], m.peers[i])
	}
	var stop atomic.Bool
	var cnt counts
	var wg sync.WaitGroup
	wg.Go(func() { cnt = countRun(socks, m.token, &stop) })
	meter := turnload.Meter{PID: m.cfg.pid}
	meter.Start()
	s := m.sendPaced(ctx, socks, total, warm, counted)
	// Stragglers: the readers stop once the sockets have been quiet for
	// the drain time after the last packet.
	time.Sleep(m.cfg.drain)
	stop.Store(true)
	wg.Wait()
	meter.Stop()
	res.cpu = meter.Usage()
	res.span, res.sendErrs, res.slips, res.truncated = s.span, s.errs, s.slips, s.truncated
	res.counted = min(counted, max(0, s.sent-warm))
	res.received, res.relayedAll, res.stray = cnt.measured, cnt.all, cnt.stray
	return res, nil
}

// sendPaced sends warm+counted packets over socks, packet k due at
// k/total seconds after the start, on socket k mod len(socks): a
// ChannelData message from a client, plain data from a peer.
func (m *manyRig) sendPaced(ctx context.Context, socks []*net.UDPConn, total, warm, counted int) sendStats {
	size := m.cfg.size
	msg := make([]byte, turn.ChannelDataHeaderSize+size)
	data := msg[turn.ChannelDataHeaderSize:]
	binary.BigEndian.PutUint64(data, m.token)
	turn.AppendChannelData(msg[:0], m.cfg.channel, data, false)
	n := warm + counted
	interval := float64(time.Second) / float64(total)
	// As in peer mode: at most 2 ms behind, then the schedule moves.
	maxLag := max(64, total/500)
	var st sendStats
	start := time.Now()
	limit := start.Add(2*time.Duration(float64(n)*interval) + 3*time.Second)
	var measuredFrom time.Time
	k := 0
	for k < n {
		if ctx.Err() != nil || time.Now().After(limit) {
			st.truncated = true
			break
		}
		// Wake every 200 µs, or when the next packet is due.
		due := start.Add(time.Duration(float64(k) * interval))
		if d := time.Until(due); d > 0 {
			sleep(max(d, 200*time.Microsecond))
		}
		upto := min(n, int(float64(time.Since(start))/interval)+1)
		if upto-k > maxLag {
			start = start.Add(time.Duration(float64(upto-k-64) * interval))
			upto = min(n, k+64)
			st.slips++
		}
		for ; k < upto; k++ {
			if k == warm {
				measuredFrom = time.Now()
			}
			data[8] = phaseWarm
			if k >= warm {
				data[8] = phaseMeasured
			}
			b := data
			if k%2 == 0 {
				b = msg // a client: ChannelData
			}
			if _, err := socks[k%len(socks)].Write(b); err != nil {
				st.errs++
			}
		}
	}
	if measuredFrom.IsZero() {
		measuredFrom = start
	}
	st.span = time.Since(measuredFrom)
	st.sent = k
	return st
}
