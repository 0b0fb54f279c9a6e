package mailbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// conn is one client connection. The read loop (runConn) owns the fields
// of the protocol state; mb is guarded by Server.mu; q by its own lock.
type conn struct {
	s      *Server
	client netip.Addr
	host   string
	tls    bool
	q      outQueue
	slow   atomic.Bool // counted as a slow client already

	// Owned by the read loop.
	appID                                string // "" until bind
	side                                 string
	allocated, claimed, released, closed bool
	opened                               bool
	nameplate, mailboxID                 string

	mb *mailbox // guarded by Server.mu: the mailbox c listens to
}

// forget is called with Server.mu held when mb is deleted.
func (c *conn) forget(mb *mailbox) {
	if c.mb == mb {
		c.mb = nil
	}
}

// send queues a frame for the client; it never blocks. A client whose
// queue overflows is disconnected.
func (c *conn) send(b []byte) {
	if !c.q.push(b) {
		c.markSlow()
	}
}

// markSlow counts c as a client that does not read, once.
func (c *conn) markSlow() {
	if c.slow.CompareAndSwap(false, true) {
		c.s.stats.slow.Add(1)
	}
}

func (s *Server) runConn(ctx context.Context, w http.ResponseWriter, r *http.Request, client netip.Addr) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Magic-wormhole clients send no Origin; a browser page of
		// another origin may use the rendezvous too: it carries no
		// cookie or credential that a cross-site request could abuse.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered the HTTP request
	}
	defer ws.CloseNow()
	ws.SetReadLimit(int64(s.cfg.MaxMessageSize) * frameLimitFactor)
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	c := &conn{s: s, client: client, host: host, tls: r.TLS != nil}
	// Room for a whole mailbox delivered at open (bodies, and the JSON
	// around each: side and phase are at most maxField bytes each), and a
	// few answers more.
	c.q.init(s.cfg.MaxMailboxBytes + s.cfg.MaxMessages*4*maxField + 2*s.cfg.MaxMessageSize + queueSlack)

	ctx, cancel := context.WithCancel(ctx)
	var writer sync.WaitGroup
	defer writer.Wait() // after cancel: deferred calls run last first
	defer cancel()
	writer.Go(func() { c.writeLoop(ctx, ws, cancel) })

	refuse := s.cfg.Disabled
	if refuse == "" {
		if err := s.connLimit.Acquire(client); err != nil {
			refuse = fmt.Sprintf("too many connections from your address (at most %d)", s.cfg.ConnsPerIP)
		} else {
			defer s.connLimit.Release(client)
		}
	}
	now := s.cfg.Now()
	if refuse != "" {
		s.stats.refused.Add(1)
		c.send(encode("welcome", welcomeMsg{Welcome: welcome{Error: refuse}}, now))
		c.q.finish() // the writer sends the welcome, then closes
		writer.Wait()
		return
	}
	s.stats.accepted.Add(1)
	s.stats.conns.Add(1)
	defer s.stats.conns.Add(-1)
	c.send(encode("welcome", welcomeMsg{Welcome: welcome{MOTD: s.cfg.MOTD}}, now))
	defer c.detach()

	// The read buffer grows with the messages and is dropped after a big
	// one, so that an idle connection holds little.
	var buf bytes.Buffer
	for {
		if buf.Cap() > keepReadBuffer {
			buf = bytes.Buffer{}
		}
		buf.Reset()
		typ, rd, err := ws.Reader(ctx)
		if err != nil {
			return // closed, or a frame beyond the read limit
		}
		n, err := buf.ReadFrom(io.LimitReader(rd, int64(s.cfg.MaxMessageSize)+1))
		if err != nil {
			return
		}
		if n > int64(s.cfg.MaxMessageSize) {
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
			s.stats.tooLarge.Add(1)
			c.sendError(fmt.Sprintf("message too large: at most %d bytes", s.cfg.MaxMessageSize), nil)
			continue
		}
		raw := buf.Bytes()
		if typ != websocket.MessageText {
			s.stats.binary.Add(1)
			c.sendError("binary frame: send JSON in text frames", nil)
			continue
		}
		if !s.connLimit.Allow(client) {
			s.stats.rateLimited.Add(1)
			c.sendError("rate limit: too many messages from your address, slow down", raw)
			continue
		}
		s.stats.commands.Add(1)
		req, err := decodeRequest(raw)
		if err != nil {
			c.sendError(err.Error(), raw)
			continue
		}
		if s.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
			s.cfg.Logger.Debug("rendezvous command", "type", req.Type, "client", client.String(), "side", c.side)
		}
		c.send(encode("ack", ackMsg{ID: req.ID}, s.cfg.Now()))
		if err := c.handle(ctx, &req, raw); err != nil {
			c.sendError(err.Error(), raw)
		}
		if err := s.j.waitRoom(ctx); err != nil {
			return
		}
	}
}

func (c *conn) sendError(msg string, raw []byte) {
	c.s.stats.errors.Add(1)
	c.send(encode("error", errorMsg{Error: msg, Orig: orig(raw)}, c.s.cfg.Now()))
}

// detach stops c listening when the connection ends; the mailbox stays.
func (c *conn) detach() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.mb != nil {
		c.s.removeListenerLocked(c.mb, c, c.s.cfg.Now())
		c.mb = nil
	}
}

// writeLoop sends the queued frames until the queue ends or ctx is done;
// a failed or stuck write ends the connection.
func (c *conn) writeLoop(ctx context.Context, ws *websocket.Conn, cancel context.CancelFunc) {
	defer cancel()
	for {
		frames, err := c.q.take(ctx)
		for _, f := range frames {
			start := time.Now()
			wctx, wcancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
			werr := ws.Write(wctx, websocket.MessageText, f)
			stuck := time.Since(start) >= c.s.cfg.WriteTimeout
			wcancel()
			if werr != nil {
				if stuck {
					c.markSlow()
				}
				return
			}
		}
		switch {
		case errors.Is(err, errQueueFinished):
			// The welcome said why; no close handshake to wait for.
			ws.CloseNow()
			return
		case errors.Is(err, errQueueOverflow):
			// No close handshake: the client does not read.
			ws.CloseNow()
			return
		case err != nil:
			return
		}
	}
}

// handlers are the built-in commands. bind and ping work before bind.
var handlers = map[string]func(c *conn, ctx context.Context, r *request) error{
	"ping":     (*conn).handlePing,
	"bind":     (*conn).handleBind,
	"list":     (*conn).handleList,
	"allocate": (*conn).handleAllocate,
	"claim":    (*conn).handleClaim,
	"release":  (*conn).handleRelease,
	"open":     (*conn).handleOpen,
	"add":      (*conn).handleAdd,
	"close":    (*conn).handleClose,
}

func (c *conn) handle(ctx context.Context, r *request, raw []byte) error {
	h := handlers[r.Type]
	if h != nil && (r.Type == "ping" || r.Type == "bind") {
		return h(c, ctx, r)
	}
	if c.appID == "" {
		return protoError("must bind first")
	}
	if h != nil {
		return h(c, ctx, r)
	}
	f := c.s.cfg.Commands[r.Type]
	if f == nil {
		return protoError("unknown type")
	}
	reply, err := f(ctx, Request{Type: r.Type, Raw: raw, AppID: c.appID, Side: c.side, Token: r.Token, Client: c.client, Host: c.host, TLS: c.tls})
	if err != nil {
		return err
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("cannot encode the answer to %q: %v", r.Type, err)
	}
	c.send(b)
	return nil
}

func (c *conn) handlePing(_ context.Context, r *request) error {
	if r.Ping == nil {
		return protoError("ping requires 'ping'")
	}
	c.send(encode("pong", pongMsg{Pong: r.Ping}, c.s.cfg.Now()))
	return nil
}

func (c *conn) handleBind(_ context.Context, r *request) error {
	switch {
	case c.appID != "":
		return protoError("already bound")
	case r.AppID == "":
		return protoError("bind requires 'appid'")
	case r.Side == "":
		return protoError("bind requires 'side'")
	}
	c.appID, c.side = r.AppID, r.Side
	return nil
}

func (c *conn) handleList(_ context.Context, _ *request) error {
	var ids []string
	c.s.mu.Lock()
	if a := c.s.apps[c.appID]; a != nil {
		for name := range a.nameplates {
			ids = append(ids, name)
		}
	}
	c.s.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { // numerically, like the codes
		a, errA := strconv.Atoi(ids[i])
		b, errB := strconv.Atoi(ids[j])
		if errA == nil && errB == nil {
			return a < b
		}
		return ids[i] < ids[j]
	})
	msg := nameplatesMsg{Nameplates: make([]nameplateID, 0, len(ids))}
	for _, id := range ids {
		msg.Nameplates = append(msg.Nameplates, nameplateID{ID: id})
	}
	c.send(encode("nameplates", msg, c.s.cfg.Now()))
	return nil
}

func (c *conn) handleAllocate(_ context.Context, _ *request) error {
	if c.allocated {
		return protoError("you already allocated one, don't be greedy")
	}
	s := c.s
	now := s.cfg.Now()
	s.mu.Lock()
	name, err := s.allocateLocked(s.appLocked(c.appID), c.side, c.client, now)
	if err != nil {
		s.dropAppLocked(s.apps[c.appID])
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	c.allocated = true
	c.send(encode("allocated", allocatedMsg{Nameplate: name}, now))
	return nil
}

func (c *conn) handleClaim(_ context.Context, r *request) error {
	switch {
	case r.Nameplate == nil:
		return protoError("claim requires 'nameplate'")
	case c.claimed:
		return protoError("only one claim per connection")
	}
	c.claimed, c.nameplate = true, *r.Nameplate
	s := c.s
	now := s.cfg.Now()
	s.mu.Lock()
	id, err := s.claimLocked(s.appLocked(c.appID), *r.Nameplate, c.side, c.client, now)
	if err != nil {
		s.dropAppLocked(s.apps[c.appID])
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	c.send(encode("claimed", claimedMsg{Mailbox: id}, now))
	return nil
}

func (c *conn) handleRelease(_ context.Context, r *request) error {
	if c.released {
		return protoError("only one release per connection")
	}
	name := c.nameplate
	switch {
	case r.Nameplate != nil && c.claimed && *r.Nameplate != c.nameplate:
		return protoError("release and claim must use same nameplate")
	case r.Nameplate != nil:
		name = *r.Nameplate
	case !c.claimed:
		return protoError("release without nameplate must follow claim")
	}
	c.released = true
	s := c.s
	s.mu.Lock()
	if a := s.apps[c.appID]; a != nil {
		s.releaseLocked(a, name, c.side)
	}
	s.mu.Unlock()
	c.send(encode("released", nil, s.cfg.Now()))
	return nil
}

func (c *conn) handleOpen(_ context.Context, r *request) error {
	switch {
	case c.opened:
		return protoError("only one open per connection")
	case r.Mailbox == nil:
		return protoError("open requires 'mailbox'")
	}
	s := c.s
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appLocked(c.appID)
	mb, msgs, err := s.openLocked(c, a, *r.Mailbox, c.side, now)
	if err != nil {
		s.dropAppLocked(a)
		return err
	}
	c.opened, c.mailboxID, c.mb = true, *r.Mailbox, mb
	// Queued under the lock, so that no new message overtakes them.
	for _, m := range msgs {
		c.send(m.wire)
	}
	return nil
}

func (c *conn) handleAdd(_ context.Context, r *request) error {
	switch {
	case r.Phase == nil:
		return protoError("missing 'phase'")
	case r.Body == nil:
		return protoError("missing 'body'")
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.mb == nil {
		return protoError("must open mailbox before adding")
	}
	return s.addLocked(c.mb, c.side, *r.Phase, *r.Body, r.ID, s.cfg.Now())
}

func (c *conn) handleClose(_ context.Context, r *request) error {
	if c.closed {
		return protoError("only one close per connection")
	}
	id := c.mailboxID
	switch {
	case r.Mailbox != nil && c.opened && *r.Mailbox != c.mailboxID:
		return protoError("open and close must use same mailbox")
	case r.Mailbox != nil:
		id = *r.Mailbox
	case !c.opened:
		return protoError("close without mailbox must follow open")
	}
	c.closed = true
	s := c.s
	now := s.cfg.Now()
	s.mu.Lock()
	if a := s.apps[c.appID]; a != nil {
		if mb := a.mailboxes[id]; mb != nil {
			s.closeLocked(mb, c.side, r.Mood, c, now)
		}
	}
	c.mb = nil
	s.mu.Unlock()
	c.send(encode("closed", nil, now))
	return nil
}
