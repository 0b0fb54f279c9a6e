package turnclient

// The driver of an allocation once it exists: the read loop over UDP, the
// dispatch of what the server sends, and the refresher that runs the
// core's timers (RFC 8656, Sections 8, 9, 11 and 12). allocate.go has the
// allocation handshake and the stream framing.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// createPermission runs CreatePermission for ip. RFC 8656, Section 9.1.
func (r *Relay) createPermission(ctx context.Context, ip netip.Addr) error {
	_, err := r.client.Do(ctx, r.Server(), stun.MethodCreatePermission, func(b []byte, id stun.TransactionID) []byte {
		return turn.AppendPeerAddress(b, netip.AddrPortFrom(ip, 0), id)
	})
	if err != nil {
		return classify(err)
	}
	r.mu.Lock()
	r.core.permissionCreated(ip, time.Now())
	r.mu.Unlock()
	return nil
}

// CreatePermission asks the server to install a permission for ip without
// sending data (RFC 8656, Section 9). WriteTo does this by itself; this is
// for callers that expect data before they send, or that probe a server's
// peer policy: ip is sent as given, so an IPv4-mapped IPv6 address goes
// as IPv6. A refusal (403) wraps ErrForbidden; other error responses are
// *stun.Error.
func (r *Relay) CreatePermission(ctx context.Context, ip netip.Addr) error {
	if r.life.closed() {
		return r.opError("permission", nil, net.ErrClosed)
	}
	return r.createPermission(ctx, ip)
}

// refresher runs the core's timers: allocation refreshes, permission
// refreshes and channel bindings. It is started by Allocate and stopped by
// Close (through ctx), or ends when the allocation is lost.
func (r *Relay) refresher(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		tasks := r.core.due(time.Now())
		r.mu.Unlock()
		for _, t := range tasks {
			granted, err := r.run(ctx, t)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.log.Debug("turn: background request failed", "task", t.kind, "peer", t.peer, "ip", t.ip, "err", err)
			}
			r.mu.Lock()
			r.core.done(t, granted, err, time.Now())
			lost := r.core.lost
			r.mu.Unlock()
			if lost != nil {
				r.fail(fmt.Errorf("%w: %w", ErrAllocationLost, lost))
				return
			}
		}
		if len(tasks) > 0 {
			continue
		}
		r.mu.Lock()
		next := r.core.nextDeadline()
		r.mu.Unlock()
		var tc <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-r.life.dead:
			return
		case <-r.kick:
		case <-tc:
		}
		timer.Stop()
	}
}

// run sends the request for t.
func (r *Relay) run(ctx context.Context, t task) (time.Duration, error) {
	switch t.kind {
	case taskRefresh:
		resp, err := r.client.Do(ctx, r.Server(), stun.MethodRefresh, func(b []byte, _ stun.TransactionID) []byte {
			return turn.AppendRefresh(b, r.cfg.Lifetime)
		})
		if err != nil {
			return 0, err
		}
		granted := defaultLifetime
		if v, ok := resp.Message.Get(stun.AttrLifetime); ok {
			if l, err := turn.ParseLifetime(v); err == nil {
				granted = l
			}
		}
		return granted, nil
	case taskPermission:
		_, err := r.client.Do(ctx, r.Server(), stun.MethodCreatePermission, func(b []byte, id stun.TransactionID) []byte {
			return turn.AppendPeerAddress(b, netip.AddrPortFrom(t.ip, 0), id)
		})
		return 0, err
	case taskBind:
		_, err := r.client.Do(ctx, r.Server(), stun.MethodChannelBind, func(b []byte, id stun.TransactionID) []byte {
			return turn.AppendChannelBind(b, t.ch, t.peer, id)
		})
		return 0, err
	}
	return 0, fmt.Errorf("turn: unknown task %d", t.kind)
}

// readUDP is the read loop over UDP. It ends when the socket is closed.
func (r *Relay) readUDP() {
	defer r.life.wg.Done()
	buf := make([]byte, 64<<10)
	var msg stun.Message
	fails := 0
	for {
		n, from, err := r.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || fails > 100 {
				r.fail(fmt.Errorf("%w: %w", ErrAllocationLost, err))
				return
			}
			fails++
			continue
		}
		fails = 0
		r.handle(buf[:n], netx.Unmap(from), &msg)
	}
}

// handle dispatches one packet from the server: STUN responses to the
// transaction client, Data indications and ChannelData to ReadFrom.
// Anything else is counted and dropped.
func (r *Relay) handle(b []byte, from netip.AddrPort, msg *stun.Message) {
	switch {
	case len(b) > 0 && stun.IsSTUNByte(b[0]):
		if r.client.HandlePacket(b, from) {
			return
		}
		if from != r.Server() {
			r.st.foreign.Add(1)
			return
		}
		if err := msg.Parse(b); err != nil || msg.Classic {
			r.st.malformed.Add(1)
			return
		}
		if msg.Type == (stun.Type{Method: stun.MethodConnectionAttempt, Class: stun.ClassIndication}) && r.attempts != nil {
			r.connectionAttempt(msg)
			return
		}
		if msg.Type != (stun.Type{Method: stun.MethodData, Class: stun.ClassIndication}) || r.attempts != nil {
			r.st.unexpected.Add(1) // e.g. ConnectionAttempt on a UDP allocation
			return
		}
		// RFC 8656, Section 10.4.
		peer, err := msg.XORAddress(stun.AttrXORPeerAddress)
		data, ok := msg.Get(stun.AttrData)
		if err != nil || !ok {
			r.st.malformed.Add(1)
			return
		}
		r.st.recvIndications.Add(1)
		r.deliver(data, netx.Unmap(peer))
	case turn.IsChannelData(b, false): // the channels this client binds
		if from != r.Server() {
			r.st.foreign.Add(1)
			return
		}
		ch, data, err := turn.ParseChannelData(b)
		if err != nil {
			r.st.malformed.Add(1)
			return
		}
		r.mu.Lock()
		peer, ok := r.core.channelPeer(ch)
		r.mu.Unlock()
		if !ok {
			r.st.unknownChannel.Add(1)
			return
		}
		r.st.recvChannelData.Add(1)
		r.deliver(data, peer)
	default:
		if from != r.Server() {
			r.st.foreign.Add(1)
		} else {
			r.st.malformed.Add(1)
		}
	}
}

// deliver queues a datagram for ReadFrom, or drops it when the queue is
// full.
func (r *Relay) deliver(data []byte, from netip.AddrPort) {
	r.mu.Lock()
	r.core.received(from)
	r.mu.Unlock()
	pkt := packet{buf: netx.CopyBuf(data), from: from}
	select {
	case r.in <- pkt:
	default:
		netx.FreeBuf(pkt.buf)
		r.st.drop.Add(1)
	}
}
