package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// batchConn is the batch I/O that golang.org/x/net's ipv4.PacketConn and
// ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(c *net.UDPConn, v6 bool) batchConn {
	if v6 {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}

// sockBuf is the socket buffer size asked for on the generator's sockets
// (best effort: the kernel caps it at net.core.[rw]mem_max).
const sockBuf = 4 << 20

// rig is a ready relay path: sender's ChannelData to the server arrives at
// recv. It is owned by the goroutine that made it.
type rig struct {
	cfg    config
	send   *net.UDPConn // client A, connected to the server
	recv   *net.UDPConn // client B (pair) or the peer socket (peer)
	v6     bool
	token  uint64 // changes every run, so no packet of an earlier run counts
	gsoBuf []byte
	gsoOOB []byte
	conns  []*net.UDPConn
}

func (r *rig) close() {
	for _, c := range r.conns {
		_ = c.Close()
	}
}

// dial opens a UDP socket connected to the server.
func (r *rig) dial(server netip.AddrPort) (*net.UDPConn, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, err
	}
	r.conns = append(r.conns, c)
	_ = c.SetReadBuffer(sockBuf)
	_ = c.SetWriteBuffer(sockBuf)
	return c, nil
}

// client is one TURN client's setup state.
type client struct {
	conn    *net.UDPConn
	auth    turnload.Auth
	relayed netip.AddrPort
}

func (c *client) allocate(kr *turnload.Keyring) error {
	r, err := turnload.Do(c.conn, stun.MethodAllocate, turnload.AppendAllocate, &c.auth, kr)
	if err != nil {
		return fmt.Errorf("Allocate: %w", err)
	}
	if err := loopback.Check(r.Relayed); err != nil {
		return fmt.Errorf("relayed address: %w", err)
	}
	c.relayed = r.Relayed
	return nil
}

// bind installs a permission for peer and binds ch to it. RFC 8656,
// Sections 10 and 12.
func (c *client) bind(kr *turnload.Keyring, ch uint16, peer netip.AddrPort) error {
	perm := func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
		return turnload.AppendCreatePermission(b, id, peer, a)
	}
	if _, err := turnload.Do(c.conn, stun.MethodCreatePermission, perm, &c.auth, kr); err != nil {
		return fmt.Errorf("CreatePermission %v: %w", peer, err)
	}
	cb := func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
		return turnload.AppendChannelBind(b, id, ch, peer, a)
	}
	if _, err := turnload.Do(c.conn, stun.MethodChannelBind, cb, &c.auth, kr); err != nil {
		return fmt.Errorf("ChannelBind %#x to %v: %w", ch, peer, err)
	}
	return nil
}

// setup allocates, installs permissions and binds channels, then checks
// that a packet gets through.
func setup(cfg config) (*rig, error) {
	server := cfg.server
	r := &rig{cfg: cfg, v6: server.Addr().Is6()}
	var err error
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	kr := &turnload.Keyring{Creds: cfg.creds}
	a := &client{}
	if a.conn, err = r.dial(server); err != nil {
		return nil, err
	}
	if err := a.allocate(kr); err != nil {
		return nil, fmt.Errorf("client A: %w", err)
	}
	r.send = a.conn
	switch cfg.mode {
	case "pair":
		b := &client{}
		if b.conn, err = r.dial(server); err != nil {
			return nil, err
		}
		if err := b.allocate(kr); err != nil {
			return nil, fmt.Errorf("client B: %w", err)
		}
		if err := a.bind(kr, cfg.channel, b.relayed); err != nil {
			return nil, fmt.Errorf("client A: %w", err)
		}
		if err := b.bind(kr, cfg.channel, a.relayed); err != nil {
			return nil, fmt.Errorf("client B: %w", err)
		}
		r.recv = b.conn
	case "peer":
		// The peer is connected to RA, so the kernel hands it nothing else.
		p, err := net.DialUDP("udp", &net.UDPAddr{IP: server.Addr().AsSlice()}, net.UDPAddrFromAddrPort(a.relayed))
		if err != nil {
			return nil, fmt.Errorf("peer socket: %w", err)
		}
		r.conns = append(r.conns, p)
		_ = p.SetReadBuffer(sockBuf)
		peer := p.LocalAddr().(*net.UDPAddr).AddrPort()
		if err := a.bind(kr, cfg.channel, netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())); err != nil {
			return nil, fmt.Errorf("client A: %w", err)
		}
		r.recv = p
	}
	if err := r.probe(); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// payloadOf returns the application data of a datagram the receiver got:
// the ChannelData's data in pair mode, the datagram itself in peer mode.
func (r *rig) payloadOf(b []byte) ([]byte, bool) {
	if r.cfg.mode == "peer" {
		return b, true
	}
	ch, data, err := turn.ParseChannelData(b)
	if err != nil || ch != r.cfg.channel {
		return nil, false
	}
	return data, true
}

// probe sends single packets until one arrives, for at most 2 s: the path
// works before anything is measured.
func (r *rig) probe() error {
	msg := make([]byte, 0, turn.ChannelDataHeaderSize+r.cfg.size)
	data := make([]byte, r.cfg.size)
	copy(data, "relayload probe")
	msg = turn.AppendChannelData(msg, r.cfg.channel, data, false)
	buf := make([]byte, 2048)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := r.send.Write(msg); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		_ = r.recv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, err := r.recv.Read(buf)
			if err != nil {
				break
			}
			if p, ok := r.payloadOf(buf[:n]); ok && len(p) == len(data) && string(p[:15]) == "relayload probe" {
				return nil
			}
		}
	}
	return errors.New("probe: no ChannelData came through the relay within 2s")
}

// run offers rate packets per second for warmup plus duration and counts
// the measured packets that arrive.
func (r *rig) run(ctx context.Context, rate int) (result, error) {
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	r.token = binary.BigEndian.Uint64(tok[:])
	warm := int(float64(rate) * r.cfg.warmup.Seconds())
	counted := max(1, int(float64(rate)*r.cfg.duration.Seconds()))
	res := result{label: r.cfg.label, mode: r.cfg.mode, offered: rate, counted: counted}

	var (
		senderDone atomic.Bool
		rx         receiver
		wg         sync.WaitGroup
	)
	rx.init(r, uint64(warm), uint64(warm+counted))
	meter := turnload.Meter{PID: r.cfg.pid}
	meter.Start()
	wg.Go(func() { rx.loop(&senderDone, r.cfg.drain) })
	s := r.sendPaced(ctx, rate, warm, counted)
	senderDone.Store(true)
	wg.Wait()
	meter.Stop()
	res.cpu = meter.Usage()
	res.span, res.sendErrs, res.slips, res.truncated = s.span, s.errs, s.slips, s.truncated
	// A truncated run counts only the measured packets it sent.
	res.counted = min(counted, max(0, s.sent-warm))
	res.received, res.stray = int(rx.counted), int(rx.stray)
	if rx.err != nil {
		return res, rx.err
	}
	return res, nil
}

type sendStats struct {
	span      time.Duration
	errs      int
	slips     int // times the schedule was pushed back instead of bursting
	sent      int // packets sent, warmup included
	truncated bool
}

// sendPaced sends warm+counted packets, packet k due at k/rate seconds after
// the start, in batches of cfg.batch. It returns how long the counted
// packets took to go out.
func (r *rig) sendPaced(ctx context.Context, rate, warm, counted int) sendStats {
	batch := r.cfg.batch
	pc := newBatchConn(r.send, r.v6)
	msgs := make([]ipv4.Message, batch)
	size := turn.ChannelDataHeaderSize + r.cfg.size
	bufs := make([]byte, batch*size)
	for i := range msgs {
		b := bufs[i*size : i*size : (i+1)*size]
		data := b[turn.ChannelDataHeaderSize:size]
		binary.BigEndian.PutUint64(data[0:8], r.token)
		msgs[i].Buffers = [][]byte{turn.AppendChannelData(b, r.cfg.channel, data, false)}
	}
	if r.cfg.gso {
		r.gsoBuf = make([]byte, 0, batch*size)
		r.gsoOOB = gsoControl(size)
	}
	total := warm + counted
	var st sendStats
	interval := float64(time.Second) / float64(rate)
	// The most packets the sender may be behind schedule, and so the
	// largest burst it sends: 2 ms worth (a time slice lost to another
	// process on a busy host), at least two batches.
	maxLag := max(2*batch, rate/500)
	start := time.Now()
	// A run that cannot keep up (a stalled socket) still ends: at twice
	// its planned time plus a few seconds.
	limit := start.Add(2*time.Duration(float64(total)*interval) + 3*time.Second)
	var measuredFrom time.Time
	k := 0
	for k < total {
		if ctx.Err() != nil || time.Now().After(limit) {
			st.truncated = true
			break
		}
		// Wait until the last packet of the next batch is due.
		n := min(batch, total-k)
		due := start.Add(time.Duration(float64(k+n-1) * interval))
		if d := time.Until(due); d > 0 {
			sleep(d)
		}
		// Send everything due by now, batch by batch.
		now := time.Since(start)
		upto := min(total, int(float64(now)/interval)+1)
		if upto-k > maxLag {
			// The generator fell behind (it was starved of CPU). Sending
			// the backlog at once would be a burst no steady client makes:
			// push the schedule back instead, so the offered rate over
			// the run (sent_rate) shows the shortfall.
			shift := upto - k - batch
			start = start.Add(time.Duration(float64(shift) * interval))
			upto = min(total, k+batch)
			st.slips++
		}
		for k < upto {
			n := min(batch, upto-k)
			if k <= warm && warm < k+n {
				measuredFrom = time.Now()
			}
			for i := range n {
				b := msgs[i].Buffers[0]
				binary.BigEndian.PutUint64(b[turn.ChannelDataHeaderSize+8:], uint64(k+i))
			}
			var sent int
			var err error
			if r.cfg.gso {
				sent, err = r.writeGSO(msgs[:n], size)
			} else {
				sent, err = pc.WriteBatch(msgs[:n], 0)
			}
			if sent <= 0 {
				st.errs++
				if err != nil && !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
					st.truncated, st.sent = true, k
					return st
				}
				continue // retry the same packets: they were never offered
			}
			k += sent
		}
	}
	if measuredFrom.IsZero() {
		measuredFrom = start
	}
	st.span = time.Since(measuredFrom)
	st.sent = k
	return st
}

// receiver counts arrivals. Only its goroutine writes the fields until
// loop returns.
type receiver struct {
	r        *rig
	lo, hi   uint64 // the counted sequence numbers: [lo, hi)
	counted  uint64
	stray    uint64
	err      error
	pc       batchConn
	msgs     []ipv4.Message
	received []bool
}

func (rx *receiver) init(r *rig, lo, hi uint64) {
	rx.r, rx.lo, rx.hi = r, lo, hi
	rx.pc = newBatchConn(r.recv, r.v6)
	rx.msgs = make([]ipv4.Message, r.cfg.batch)
	bufs := make([]byte, r.cfg.batch*2048)
	for i := range rx.msgs {
		rx.msgs[i].Buffers = [][]byte{bufs[i*2048 : (i+1)*2048]}
	}
	rx.received = make([]bool, hi-lo)
}

// loop reads until the sender is done and nothing arrived for drain.
func (rx *receiver) loop(senderDone *atomic.Bool, drain time.Duration) {
	const poll = 50 * time.Millisecond
	var quietSince, doneAt time.Time
	for {
		_ = rx.r.recv.SetReadDeadline(time.Now().Add(poll))
		n, err := rx.pc.ReadBatch(rx.msgs, 0)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, net.ErrClosed):
			rx.err = err
			return
		default:
			// ECONNREFUSED and the like: count and go on.
			rx.stray++
		}
		for i := range n {
			rx.count(rx.msgs[i].Buffers[0][:rx.msgs[i].N])
		}
		if !senderDone.Load() {
			continue
		}
		if doneAt.IsZero() {
			doneAt = time.Now()
		} else if time.Since(doneAt) > drain+5*time.Second {
			return // datagrams keep coming; the count is as final as it gets
		}
		if n > 0 {
			quietSince = time.Time{}
			continue
		}
		if quietSince.IsZero() {
			quietSince = time.Now()
		} else if time.Since(quietSince) >= drain {
			return
		}
	}
}

func (rx *receiver) count(b []byte) {
	p, ok := rx.r.payloadOf(b)
	if !ok || len(p) < 16 || binary.BigEndian.Uint64(p[0:8]) != rx.r.token {
		rx.stray++
		return
	}
	seq := binary.BigEndian.Uint64(p[8:16])
	if seq < rx.lo || seq >= rx.hi {
		return // warmup
	}
	if i := seq - rx.lo; !rx.received[i] {
		rx.received[i] = true
		rx.counted++
	}
}

// writeGSO sends msgs, all of length size, as one UDP GSO datagram
// (UDP_SEGMENT): the kernel cuts it into len(msgs) datagrams, so the
// generator pays one pass through the stack for the batch.
func (r *rig) writeGSO(msgs []ipv4.Message, size int) (int, error) {
	buf := r.gsoBuf[:0]
	for i := range msgs {
		buf = append(buf, msgs[i].Buffers[0]...)
	}
	r.gsoBuf = buf
	_, _, err := r.send.WriteMsgUDP(buf, r.gsoOOB, nil)
	if err != nil {
		return 0, err
	}
	return len(msgs), nil
}
