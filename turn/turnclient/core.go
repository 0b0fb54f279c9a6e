package turnclient

import (
	"errors"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// Lifetimes fixed by RFC 8656: a permission lasts 300 s (Section 9) and a
// channel binding 600 s (Section 12). The client refreshes a minute early.
const (
	permissionLifetime = 300 * time.Second
	permissionRefresh  = 240 * time.Second
	channelLifetime    = 600 * time.Second
	channelRefresh     = 540 * time.Second
	// defaultLifetime is what a server grants when its response omits
	// LIFETIME. RFC 8656, Section 3.
	defaultLifetime = 600 * time.Second
	// retryDelay is how soon a failed refresh is tried again (bounded
	// by the time left).
	retryDelay = 5 * time.Second
	// bindRetryDelay is how long a peer whose ChannelBind failed goes on
	// with Send indications before the next try.
	bindRetryDelay = 60 * time.Second
)

// taskKind is a request the core asks its driver to send.
type taskKind uint8

const (
	taskRefresh    taskKind = iota + 1 // Refresh of the allocation, RFC 8656 Section 8
	taskPermission                     // CreatePermission refresh, Section 9
	taskBind                           // ChannelBind (new or refresh), Section 11
)

// task is one request for the driver. The driver runs it and reports the
// outcome with core.done.
type task struct {
	kind taskKind
	ip   netip.Addr     // taskPermission
	peer netip.AddrPort // taskBind
	ch   uint16         // taskBind
}

type permission struct {
	expires, refreshAt time.Time
	used               bool // sent to or heard from since the last refresh
	busy               bool // a refresh is running
}

type binding struct {
	num       uint16 // 0 until a number is assigned
	bound     bool
	expires   time.Time
	refreshAt time.Time // when bound: refresh; when not: retry
	busy      bool
	used      bool
	sends     int // Send indications to the peer while unbound
}

// core is the client's protocol state without I/O: allocation lifetime,
// permissions, channel numbers and bindings, and the timers of all of
// them. Time is always passed in. The driver (Relay) calls due to learn
// which requests to send, done to report their outcome, and nextDeadline
// to know when to call due again. It is not safe for concurrent use; the
// Relay guards it with its mutex.
//
// Channel policy: a peer gets a channel number once it has been sent
// bindAfter packets with Send indications (so a peer written to once never
// costs a ChannelBind); the number is bound in the background, and packets
// go as ChannelData once the server has confirmed the binding. Numbers are
// handed out from 0x4000 upwards and never given to another peer (RFC
// 8656, Section 12.3 forbids rebinding a number to another peer while the
// binding lives, and for 5 minutes after); when 0x4FFF is used, further
// peers stay on Send indications.
type core struct {
	bindAfter int
	// keepPermissions refreshes every permission until the allocation
	// ends, used or not: a TCP allocation (RFC 6062) needs them to
	// accept peer connections, which the core does not see.
	keepPermissions bool

	expires, refreshAt time.Time
	refreshBusy        bool
	lost               error // the allocation is gone

	perms  map[netip.Addr]*permission
	peers  map[netip.AddrPort]*binding
	byNum  map[uint16]netip.AddrPort
	nextCh uint16
}

func newCore(bindAfter int, lifetime time.Duration, now time.Time) *core {
	c := &core{
		bindAfter: bindAfter,
		perms:     make(map[netip.Addr]*permission),
		peers:     make(map[netip.AddrPort]*binding),
		byNum:     make(map[uint16]netip.AddrPort),
		nextCh:    turn.MinChannel,
	}
	c.setLifetime(lifetime, now)
	return c
}

// refreshDelay is when to refresh an allocation granted for l: a minute
// before it expires, or half way for a lifetime under two minutes.
func refreshDelay(l time.Duration) time.Duration {
	if l >= 2*time.Minute {
		return l - time.Minute
	}
	return l / 2
}

func (c *core) setLifetime(l time.Duration, now time.Time) {
	if l <= 0 {
		l = defaultLifetime
	}
	c.expires = now.Add(l)
	c.refreshAt = now.Add(refreshDelay(l))
}

// hasPermission reports whether a live permission for ip exists.
func (c *core) hasPermission(ip netip.Addr, now time.Time) bool {
	p := c.perms[ip]
	return p != nil && now.Before(p.expires)
}

// permissionCreated records a successful CreatePermission for ip.
func (c *core) permissionCreated(ip netip.Addr, now time.Time) {
	p := c.perms[ip]
	if p == nil {
		p = &permission{}
		c.perms[ip] = p
	}
	p.expires, p.refreshAt, p.used = now.Add(permissionLifetime), now.Add(permissionRefresh), false
}

// route picks how to send one packet to peer: over channel ch when a
// binding is confirmed, else (ch == 0) as a Send indication. It records
// the use of the peer and reports whether a channel number was just
// assigned, so the driver should run due soon.
func (c *core) route(peer netip.AddrPort, now time.Time) (ch uint16, kick bool) {
	if p := c.perms[peer.Addr()]; p != nil {
		p.used = true
	}
	b := c.peers[peer]
	if b == nil {
		b = &binding{}
		c.peers[peer] = b
	}
	b.used = true
	if b.bound && now.Before(b.expires) {
		return b.num, false
	}
	b.sends++
	switch {
	case b.sends < c.bindAfter:
		return 0, false
	case b.num == 0:
		if c.nextCh > turn.MaxChannel {
			return 0, false // numbers used up: Send indications only
		}
		b.num = c.nextCh
		c.nextCh++
		c.byNum[b.num] = peer
		b.refreshAt = now // bind now
		return 0, true
	case b.refreshAt.Equal(farFuture):
		b.refreshAt = now // lapsed for lack of use: bind again
		return 0, true
	}
	return 0, false
}

// received records data from peer (it keeps the permission and binding in
// use).
func (c *core) received(peer netip.AddrPort) {
	if p := c.perms[peer.Addr()]; p != nil {
		p.used = true
	}
	if b := c.peers[peer]; b != nil {
		b.used = true
	}
}

// channelPeer returns the peer of channel number n, if one was assigned.
func (c *core) channelPeer(n uint16) (netip.AddrPort, bool) {
	p, ok := c.byNum[n]
	return p, ok
}

// due returns the requests to send at now and marks them running.
func (c *core) due(now time.Time) []task {
	if c.lost != nil {
		return nil
	}
	var ts []task
	if !c.refreshBusy && !now.Before(c.refreshAt) {
		c.refreshBusy = true
		ts = append(ts, task{kind: taskRefresh})
	}
	for ip, p := range c.perms {
		if p.busy || now.Before(p.refreshAt) {
			continue
		}
		switch {
		case p.used || c.keepPermissions:
			p.busy = true
			ts = append(ts, task{kind: taskPermission, ip: ip})
		case !now.Before(p.expires):
			delete(c.perms, ip) // unused: let it lapse
		}
	}
	for peer, b := range c.peers {
		if b.num == 0 || b.busy || now.Before(b.refreshAt) {
			continue
		}
		switch {
		case !b.bound || b.used:
			b.busy = true
			ts = append(ts, task{kind: taskBind, peer: peer, ch: b.num})
		case !now.Before(b.expires):
			// Unused: let it lapse, keep the number for this peer.
			b.bound, b.sends, b.refreshAt = false, 0, farFuture
		}
	}
	return ts
}

// farFuture parks a timer that only route restarts.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// done reports the outcome of a task from due: err nil for success, and
// for taskRefresh the lifetime the server granted.
func (c *core) done(t task, granted time.Duration, err error, now time.Time) {
	switch t.kind {
	case taskRefresh:
		c.refreshBusy = false
		if err == nil {
			c.setLifetime(granted, now)
			return
		}
		if se, ok := errors.AsType[*stun.Error](err); ok && se.Code == stun.CodeAllocationMismatch {
			c.lost = err
			return
		}
		if !now.Before(c.expires) {
			c.lost = err
			return
		}
		c.refreshAt = now.Add(min(retryDelay, c.expires.Sub(now)/2))
	case taskPermission:
		p := c.perms[t.ip]
		if p == nil {
			return
		}
		p.busy = false
		if err == nil {
			c.permissionCreated(t.ip, now)
			return
		}
		if se, ok := errors.AsType[*stun.Error](err); ok && se.Code == stun.CodeForbidden {
			delete(c.perms, t.ip)
			return
		}
		p.refreshAt = now.Add(retryDelay)
	case taskBind:
		b := c.peers[t.peer]
		if b == nil {
			return
		}
		b.busy = false
		if err == nil {
			// A ChannelBind installs or refreshes the permission too.
			// RFC 8656, Section 12.2.
			c.permissionCreated(t.peer.Addr(), now)
			b.bound, b.used = true, false
			b.expires, b.refreshAt = now.Add(channelLifetime), now.Add(channelRefresh)
			return
		}
		if b.bound && now.Before(b.expires) {
			b.refreshAt = now.Add(retryDelay)
			return
		}
		b.bound = false
		b.refreshAt = now.Add(bindRetryDelay)
	}
}

// nextDeadline returns when due has work next (the zero time if never).
func (c *core) nextDeadline() time.Time {
	if c.lost != nil {
		return time.Time{}
	}
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !c.refreshBusy {
		earliest(c.refreshAt)
	}
	for _, p := range c.perms {
		if p.busy {
			continue
		}
		if p.used || c.keepPermissions {
			earliest(p.refreshAt)
		} else {
			earliest(p.expires)
		}
	}
	for _, b := range c.peers {
		if b.num == 0 || b.busy || b.refreshAt.Equal(farFuture) {
			continue
		}
		if b.bound && !b.used {
			earliest(b.expires)
		} else {
			earliest(b.refreshAt)
		}
	}
	return next
}
