package wormhole

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/icebreaker-net/icebreaker/wormhole/spake2"
)

// Timeouts of the connection to the server.
const (
	dialTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second
)

// outbound is a message added to the mailbox and not yet echoed back by
// the server: it is sent again after a reconnect.
type outbound struct {
	phase string
	body  []byte // the plaintext JSON for "pake", the sealed box otherwise
}

// session is the state of a Wormhole, guarded by Wormhole.mu.
type session struct {
	conn *websocket.Conn // nil while disconnected
	motd string

	allocating  bool // Allocate: waiting for "allocated"
	nameplate   string
	code        Code
	mailbox     string
	releaseSent bool
	released    bool
	closeMood   Mood // set by Close
	closed      bool // the server said "closed"

	pake         *spake2.State
	key          []byte
	verified     bool
	peerSide     string
	peerVersions json.RawMessage
	early        []*ServerMessage // peer messages that came before the key

	pending   []outbound      // ours, not yet echoed
	processed map[string]bool // the peer's phases already handled
	inbound   map[int][]byte  // the peer's numbered phases, opened
	nextRx    int
	nextTx    int

	iceAnswer *ServerMessage // answer to the outstanding ICEServers request
	iceCmd    map[string]any // that request, sent again after a reconnect
}

// connect dials the server and reads its welcome.
func (w *Wormhole) connect(ctx context.Context) (*websocket.Conn, *Welcome, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, w.cfg.URL, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("wormhole: connecting to %s: %w", w.cfg.URL, ctx.Err())
		}
		return nil, nil, fmt.Errorf("%w: connecting to %s: %v", ErrServerGone, w.cfg.URL, err)
	}
	conn.SetReadLimit(w.cfg.MaxMessageSize)
	for {
		m, err := readMessage(dctx, conn)
		if err != nil {
			conn.CloseNow()
			if errors.Is(err, ErrBadServerMessage) {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("%w: waiting for the welcome from %s: %v", ErrServerGone, w.cfg.URL, err)
		}
		if m.Type != "welcome" {
			continue
		}
		if m.Welcome.Error != "" {
			conn.CloseNow()
			return nil, nil, &ServerError{Text: m.Welcome.Error}
		}
		return conn, m.Welcome, nil
	}
}

// readMessage reads the next text frame and parses it. Binary frames are
// skipped: the protocol has none.
func readMessage(ctx context.Context, conn *websocket.Conn) (*ServerMessage, error) {
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			continue
		}
		return ParseServerMessage(b)
	}
}

// resumeLocked makes conn the connection and brings the server up to date
// with the session: bind, then allocate, claim or release, open, the
// messages not yet echoed, and close, as far as the session got. The server
// replays the mailbox on open; phases already processed are dropped.
func (w *Wormhole) resumeLocked(conn *websocket.Conn) {
	w.st.conn = conn
	w.sendLocked(map[string]any{
		"type": "bind", "appid": w.cfg.AppID, "side": w.side,
		"client_version": []string{"icebreaker", w.cfg.ClientVersion},
	})
	switch {
	case w.st.allocating && w.st.nameplate == "":
		w.sendLocked(map[string]any{"type": "allocate"})
	case w.st.nameplate != "" && !w.st.releaseSent:
		w.sendLocked(map[string]any{"type": "claim", "nameplate": w.st.nameplate})
	case w.st.releaseSent && !w.st.released:
		w.sendLocked(map[string]any{"type": "release", "nameplate": w.st.nameplate})
	}
	if w.st.mailbox != "" {
		w.sendLocked(map[string]any{"type": "open", "mailbox": w.st.mailbox})
		for _, o := range w.st.pending {
			w.sendAddLocked(o)
		}
		if w.st.closeMood != "" && !w.st.closed {
			w.sendLocked(map[string]any{"type": "close", "mailbox": w.st.mailbox, "mood": string(w.st.closeMood)})
		}
	}
	if w.st.iceCmd != nil && w.st.iceAnswer == nil {
		w.sendLocked(w.st.iceCmd)
	}
}

// sendLocked writes one command with a fresh id (unless it has one). While
// disconnected it does nothing: resumeLocked sends what is still needed. A
// failed write closes the connection, so that run reconnects.
func (w *Wormhole) sendLocked(cmd map[string]any) string {
	id, _ := cmd["id"].(string)
	if id == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		cmd["id"] = id
	}
	if w.st.conn == nil {
		return id
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		panic("wormhole: marshal command: " + err.Error()) // only plain types
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := w.st.conn.Write(ctx, websocket.MessageText, b); err != nil {
		w.cfg.Logger.Debug("wormhole: write failed; reconnecting", "err", err)
		w.st.conn.CloseNow()
	}
	return id
}

// addLocked queues a message for the mailbox and sends it when it is open.
func (w *Wormhole) addLocked(phase string, body []byte) {
	o := outbound{phase: phase, body: body}
	w.st.pending = append(w.st.pending, o)
	if w.st.mailbox != "" {
		w.sendAddLocked(o)
	}
}

func (w *Wormhole) sendAddLocked(o outbound) {
	w.sendLocked(map[string]any{"type": "add", "phase": o.phase, "body": hex.EncodeToString(o.body)})
}

// releaseLocked releases the nameplate (once).
func (w *Wormhole) releaseLocked() {
	if w.st.releaseSent || w.st.nameplate == "" {
		return
	}
	w.st.releaseSent = true
	w.sendLocked(map[string]any{"type": "release", "nameplate": w.st.nameplate})
}

// run owns the connection: it reads and handles server messages and
// reconnects when the connection drops. Close stops it (through ctx).
func (w *Wormhole) run(ctx context.Context, conn *websocket.Conn) {
	defer close(w.done)
	for {
		err := w.readLoop(ctx, conn)
		w.mu.Lock()
		w.st.conn = nil
		w.mu.Unlock()
		conn.CloseNow()
		if ctx.Err() != nil {
			return
		}
		// A server that closes because of what we sent (a message over its
		// size limit, a policy refusal) would close again after a
		// reconnect replays it: give up instead of looping.
		if st := websocket.CloseStatus(err); st == websocket.StatusMessageTooBig || st == websocket.StatusPolicyViolation {
			w.mu.Lock()
			w.failLocked(&ServerError{Command: "add", Text: fmt.Sprintf("the server closed the connection (%v): %v", st, err)})
			w.mu.Unlock()
			return
		}
		w.cfg.Logger.Debug("wormhole: connection lost; reconnecting", "err", err)
		conn = w.reconnect(ctx)
		if conn == nil {
			return
		}
	}
}

// readLoop handles messages until the connection fails.
func (w *Wormhole) readLoop(ctx context.Context, conn *websocket.Conn) error {
	for {
		m, err := readMessage(ctx, conn)
		if errors.Is(err, ErrBadServerMessage) {
			w.cfg.Logger.Debug("wormhole: dropping a malformed server message", "err", err)
			continue
		}
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.handleLocked(m)
		w.notifyLocked()
		w.mu.Unlock()
	}
}

// reconnect dials again with backoff for at most Config.Reconnect and
// resumes the session on the new connection. It returns nil when it gave
// up (the session then fails with ErrServerGone) or ctx ended.
func (w *Wormhole) reconnect(ctx context.Context) *websocket.Conn {
	deadline := time.Now().Add(w.cfg.Reconnect)
	delay := 50 * time.Millisecond
	var lastErr error
	for time.Now().Before(deadline) {
		conn, _, err := w.connect(ctx)
		if err == nil {
			w.mu.Lock()
			w.resumeLocked(conn)
			w.notifyLocked()
			w.mu.Unlock()
			w.cfg.Logger.Debug("wormhole: reconnected")
			return conn
		}
		lastErr = err
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
	w.mu.Lock()
	switch {
	case lastErr == nil:
		lastErr = ErrServerGone
	case !errors.Is(lastErr, ErrServerGone): // the server refused us, say
		lastErr = fmt.Errorf("%w: %w", ErrServerGone, lastErr)
	}
	w.failLocked(fmt.Errorf("%w (the connection was lost; reconnecting failed for %v)", lastErr, w.cfg.Reconnect))
	w.mu.Unlock()
	return nil
}

// handleLocked applies one server message to the session.
func (w *Wormhole) handleLocked(m *ServerMessage) {
	switch m.Type {
	case "allocated":
		if w.st.allocating && w.st.nameplate == "" {
			c, err := GenerateCode(m.Nameplate, w.cfg.Words, w.cfg.Rand)
			if err == nil {
				err = w.setCodeLocked(c)
			}
			if err != nil {
				w.failLocked(err)
				return
			}
			w.sendLocked(map[string]any{"type": "claim", "nameplate": w.st.nameplate})
		}
	case "claimed":
		if w.st.mailbox == "" {
			w.st.mailbox = m.Mailbox
			w.sendLocked(map[string]any{"type": "open", "mailbox": w.st.mailbox})
			for _, o := range w.st.pending {
				w.sendAddLocked(o)
			}
		}
	case "released":
		w.st.released = true
	case "closed":
		w.st.closed = true
	case "message":
		w.handleMessageLocked(m)
	case "error":
		w.handleErrorLocked(m)
	case "icebreaker-ice-servers":
		if w.st.iceCmd != nil {
			w.st.iceAnswer = m
		}
	}
}

// handleErrorLocked handles the server's refusal of a command.
func (w *Wormhole) handleErrorLocked(m *ServerMessage) {
	orig := m.origOf()
	switch {
	case orig.Type == "icebreaker-ice-servers":
		// A late refusal of an earlier request carries another id.
		if w.st.iceCmd != nil && (orig.ID == "" || orig.ID == w.st.iceCmd["id"]) {
			w.st.iceAnswer = m
		}
	case m.Error == "crowded":
		w.failLocked(ErrCrowded)
	case orig.Type == "release" || orig.Type == "close":
		// Not worth failing the session over: say so and go on.
		w.cfg.Logger.Debug("wormhole: server refused", "command", orig.Type, "error", m.Error)
		if orig.Type == "close" {
			w.st.closed = true
		}
	default:
		w.failLocked(&ServerError{Command: orig.Type, Text: m.Error})
	}
}

// handleMessageLocked handles a message in the mailbox: an echo of ours, or
// one of the peer's.
func (w *Wormhole) handleMessageLocked(m *ServerMessage) {
	if m.Side == w.side {
		for i, o := range w.st.pending {
			if o.phase == m.Phase {
				w.st.pending = append(w.st.pending[:i], w.st.pending[i+1:]...)
				break
			}
		}
		return
	}
	if w.st.peerSide == "" {
		w.st.peerSide = m.Side
		// The peer came: the nameplate is no longer needed.
		w.releaseLocked()
	} else if m.Side != w.st.peerSide {
		w.cfg.Logger.Debug("wormhole: ignoring a message from a third side", "side", m.Side)
		return
	}
	if w.st.processed[m.Phase] {
		return // a replay after reconnecting, or a duplicate
	}
	w.st.processed[m.Phase] = true
	if m.Phase == "pake" {
		w.handlePakeLocked(m.Body)
		return
	}
	if w.st.key == nil {
		w.st.early = append(w.st.early, m)
		return
	}
	w.handleSealedLocked(m)
}

// handlePakeLocked finishes SPAKE2 with the peer's message, sends our
// version and handles what came before the key.
func (w *Wormhole) handlePakeLocked(body []byte) {
	var pm pakeMessage
	if err := json.Unmarshal(body, &pm); err != nil {
		w.failLocked(fmt.Errorf("wormhole: the peer's pake message is not JSON: %w", err))
		return
	}
	msg, err := hex.DecodeString(pm.PakeV1)
	if err != nil {
		w.failLocked(fmt.Errorf("wormhole: the peer's pake_v1 is not hex: %w", err))
		return
	}
	key, err := w.st.pake.Finish(msg)
	if err != nil {
		w.failLocked(fmt.Errorf("wormhole: PAKE with the peer failed: %w", err))
		return
	}
	w.st.key = key
	versions := w.cfg.AppVersions
	if versions == nil {
		versions = map[string]any{}
	}
	plain, err := json.Marshal(map[string]any{"app_versions": versions})
	if err != nil {
		w.failLocked(fmt.Errorf("wormhole: AppVersions: %w", err))
		return
	}
	w.addLocked("version", seal(phaseKey(key, w.side, "version"), plain))
	early := w.st.early
	w.st.early = nil
	for _, m := range early {
		w.handleSealedLocked(m)
	}
}

// handleSealedLocked opens one of the peer's sealed phases. The first that
// opens confirms the key; one that does not open means a wrong code.
func (w *Wormhole) handleSealedLocked(m *ServerMessage) {
	n, numErr := strconv.Atoi(m.Phase)
	if m.Phase != "version" && (numErr != nil || n < 0 || strconv.Itoa(n) != m.Phase) {
		w.cfg.Logger.Debug("wormhole: ignoring an unknown phase", "phase", m.Phase)
		return
	}
	plain, err := open(phaseKey(w.st.key, m.Side, m.Phase), m.Body)
	if err != nil {
		w.failLocked(ErrWrongCode)
		return
	}
	w.st.verified = true
	if m.Phase == "version" {
		var v versionMessage
		if err := json.Unmarshal(plain, &v); err == nil && len(v.AppVersions) > 0 {
			w.st.peerVersions = v.AppVersions
		} else {
			w.st.peerVersions = json.RawMessage("{}")
		}
		return
	}
	if n >= w.st.nextRx {
		w.st.inbound[n] = plain
	}
}
