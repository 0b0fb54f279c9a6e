package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/wormhole"
	"github.com/quic-go/quic-go"
)

// DefaultConnectTimeout bounds the ICE checks and the QUIC handshake.
const DefaultConnectTimeout = 30 * time.Second

// Role is which end of the connection a side is (see the package doc).
type Role uint8

// The two roles.
const (
	Dialer   Role = iota + 1 // ICE controlling, QUIC client
	Acceptor                 // ICE controlled, QUIC server
)

func (r Role) String() string {
	switch r {
	case Dialer:
		return "dialer"
	case Acceptor:
		return "acceptor"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Config configures a connection. The zero value gathers host candidates
// only (ice.GatherConfig's zero value) and waits DefaultConnectTimeout. It
// is copied by Dial and Accept.
type Config struct {
	// Gather selects the candidates (STUN and TURN servers, RelayOnly,
	// address filters). Its Trickle must be nil: the package sets it.
	Gather ice.GatherConfig
	// ConnectTimeout bounds the ICE checks and the QUIC handshake; zero
	// means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives lifecycle logs (the ICE agent's too); nil is silent.
	Logger *slog.Logger
	// OnPathChange, when set, is called with the path each time ICE
	// selects a pair (the first one, a move from a relay to a direct
	// pair and back: ice.AgentConfig.OnSelectedPairChange), on the
	// agent's goroutine, in order. The Path has no RTT. It must not
	// block.
	OnPathChange func(Path)
}

// Validate reports a configuration error.
func (c *Config) Validate() error {
	if c.Gather.Trickle != nil {
		return errors.New("peer: Config.Gather.Trickle must be nil")
	}
	if c.ConnectTimeout < 0 {
		return errors.New("peer: negative ConnectTimeout")
	}
	return c.Gather.Validate()
}

// ErrPeerFailed is wrapped by the error of Dial or Accept when the peer
// said through the mailbox that it gave up.
var ErrPeerFailed = errors.New("peer: the peer gave up")

// Conn is a QUIC connection to the peer over ICE, with the agent and the
// signalling that keep it. Its methods are safe for concurrent use; Close
// it.
type Conn struct {
	role    Role
	agent   *ice.Agent
	tr      *quic.Transport
	qc      *quic.Conn
	log     *slog.Logger
	started time.Time
	took    time.Duration

	stopSignals context.CancelFunc
	signals     sync.WaitGroup // the goroutine that reads trickled candidates

	closeOnce sync.Once
}

// Dial connects as the Dialer: it sends this side's hello and candidates
// through w, reads the peer's, runs the ICE checks as the controlling agent
// and opens QUIC as its client. Call it once both sides know (from
// Supported) that they connect with ICE. w stays open: the peer may
// trickle candidates after the connection is up; Close the Conn before w.
func Dial(ctx context.Context, w *wormhole.Wormhole, cfg Config) (*Conn, error) {
	return connect(ctx, w, cfg, Dialer, nil)
}

// Accept connects as the Acceptor. first is the peer's hello if the
// caller has already received it from w (see IsHello), else nil.
func Accept(ctx context.Context, w *wormhole.Wormhole, cfg Config, first []byte) (*Conn, error) {
	return connect(ctx, w, cfg, Acceptor, first)
}

func connect(ctx context.Context, w *wormhole.Wormhole, cfg Config, role Role, first []byte) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id, err := newIdentity()
	if err != nil {
		return nil, err
	}
	// sigCtx outlives connect: it bounds the sends of trickled candidates
	// and the reader of the peer's, which Close stops.
	sigCtx, stopSignals := context.WithCancel(context.Background())
	c := &Conn{role: role, log: cfg.Logger, started: time.Now(), stopSignals: stopSignals}
	send := func(s signal) {
		b, _ := json.Marshal(s)
		if err := w.Send(sigCtx, b); err != nil {
			c.log.Debug("peer: signalling send failed", "err", err)
		}
	}
	gc := cfg.Gather
	gc.Trickle = func(cand ice.Candidate, end bool) {
		if end {
			send(signal{Done: true})
			return
		}
		s := cand.String()
		send(signal{Candidate: &s})
	}
	var onPair func(ice.Pair)
	if f := cfg.OnPathChange; f != nil {
		onPair = func(p ice.Pair) { f(pairPath(p)) }
	}
	c.agent, err = ice.NewAgent(ice.AgentConfig{
		Gather:               gc,
		RemoteTrickle:        true,
		Logger:               cfg.Logger,
		OnSelectedPairChange: onPair,
	})
	if err != nil {
		stopSignals()
		return nil, err
	}
	fail := func(err error) (*Conn, error) {
		reason := err.Error()
		send(signal{Error: &reason})
		c.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()

	ufrag, pwd := c.agent.LocalCredentials()
	send(signal{Hello: &hello{Ufrag: ufrag, Pwd: pwd, Fingerprint: id.fingerprint, ALPN: ALPN}})
	var gathered sync.WaitGroup
	gathered.Go(func() { _, _ = c.agent.Gather(ctx) }) // trickles as it goes
	defer gathered.Wait()

	h, err := peerHello(ctx, w, first)
	if err != nil {
		return fail(err)
	}
	want, _ := parseFingerprint(h.Fingerprint) // checked by parseSignal
	peerGone := make(chan error, 1)
	c.signals.Go(func() { c.readSignals(sigCtx, w, peerGone) })
	iceCtx, iceCancel := context.WithCancelCause(ctx)
	defer iceCancel(nil)
	go func() {
		select {
		case err := <-peerGone:
			iceCancel(err)
		case <-iceCtx.Done():
		}
	}()

	var ic net.Conn
	if role == Dialer {
		ic, err = c.agent.Dial(iceCtx, h.Ufrag, h.Pwd, nil)
	} else {
		ic, err = c.agent.Accept(iceCtx, h.Ufrag, h.Pwd, nil)
	}
	if err != nil {
		if cause := context.Cause(iceCtx); errors.Is(cause, ErrPeerFailed) {
			err = cause
		}
		return fail(fmt.Errorf("peer: ICE: %w", err))
	}
	c.tr = &quic.Transport{Conn: packetConn{ic}}
	if role == Dialer {
		c.qc, err = c.tr.Dial(iceCtx, peerAddr{}, tlsConfig(id, want, false), quicConfig())
	} else {
		var ln *quic.Listener
		ln, err = c.tr.Listen(tlsConfig(id, want, true), quicConfig())
		if err == nil {
			c.qc, err = ln.Accept(iceCtx)
			ln.Close()
		}
	}
	if err != nil {
		return fail(fmt.Errorf("peer: QUIC handshake: %w", err))
	}
	c.took = time.Since(c.started)
	c.log.Info("peer: connected", "role", role, "path", c.Path().String())
	return c, nil
}

// peerHello returns the peer's hello: first, or the next message of w.
func peerHello(ctx context.Context, w *wormhole.Wormhole, first []byte) (*hello, error) {
	b := first
	if b == nil {
		var err error
		if b, err = w.Receive(ctx); err != nil {
			return nil, fmt.Errorf("peer: waiting for the peer's ICE hello: %w", err)
		}
	}
	s, err := parseSignal(b)
	switch {
	case err != nil:
		return nil, fmt.Errorf("peer: the peer's first message is not an ICE hello: %w", err)
	case s.Error != nil:
		return nil, fmt.Errorf("%w: %s", ErrPeerFailed, *s.Error)
	case s.Hello == nil:
		return nil, errors.New("peer: the peer's first message is not an ICE hello")
	}
	return s.Hello, nil
}

// readSignals passes the peer's trickled candidates to the agent until
// its end-of-candidates, an error message (sent to gone) or ctx's end.
func (c *Conn) readSignals(ctx context.Context, w *wormhole.Wormhole, gone chan<- error) {
	for {
		b, err := w.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				gone <- fmt.Errorf("%w: the mailbox: %w", ErrPeerFailed, err)
			}
			return
		}
		s, err := parseSignal(b)
		switch {
		case err != nil:
			c.log.Debug("peer: ignoring a mailbox message", "err", err)
		case s.Error != nil:
			gone <- fmt.Errorf("%w: %s", ErrPeerFailed, *s.Error)
			return
		case s.Done:
			c.agent.RemoteCandidatesDone()
			return
		case s.Candidate != nil:
			cand, err := ice.ParseCandidate(*s.Candidate)
			if err == nil {
				err = c.agent.AddRemoteCandidate(cand)
			}
			if err != nil {
				c.log.Debug("peer: ignoring a remote candidate", "candidate", *s.Candidate, "err", err)
			}
		}
	}
}

// Role returns this side's role.
func (c *Conn) Role() Role { return c.role }

// QUIC returns the QUIC connection. Do not close it; Close the Conn.
func (c *Conn) QUIC() *quic.Conn { return c.qc }

// ConnectTime is how long Dial or Accept took, from the start to the end
// of the QUIC handshake.
func (c *Conn) ConnectTime() time.Duration { return c.took }

// Path describes the connection's current path.
type Path struct {
	// LocalType, RemoteType are the candidate types of the selected ICE
	// pair (host, srflx, prflx, relay), LocalAddr and RemoteAddr their
	// addresses.
	LocalType, RemoteType string
	LocalAddr, RemoteAddr string
	// RTT is QUIC's smoothed round-trip time.
	RTT time.Duration
}

// Relayed reports whether the path goes through a TURN server.
func (p Path) Relayed() bool { return p.LocalType == "relay" || p.RemoteType == "relay" }

// Kind is "relay" or "direct".
func (p Path) Kind() string {
	if p.Relayed() {
		return "relay"
	}
	return "direct"
}

func (p Path) String() string {
	return fmt.Sprintf("%s (local %s %s, remote %s %s, rtt %.1f ms)", p.Kind(), p.LocalType, p.LocalAddr,
		p.RemoteType, p.RemoteAddr, float64(p.RTT)/float64(time.Millisecond))
}

// Path returns the current path.
func (c *Conn) Path() Path {
	var p Path
	if sel, ok := c.agent.SelectedPair(); ok {
		p = pairPath(sel)
	}
	if c.qc != nil {
		p.RTT = c.qc.ConnectionStats().SmoothedRTT
	}
	return p
}

// pairPath is the path of an ICE pair, without RTT.
func pairPath(sel ice.Pair) Path {
	return Path{
		LocalType: sel.Local.Type.String(), LocalAddr: sel.Local.Addr.String(),
		RemoteType: sel.Remote.Type.String(), RemoteAddr: sel.Remote.Addr.String(),
	}
}

// Close closes the QUIC connection (telling the peer), the transport, the
// ICE agent and the signalling; it waits for what it started. It is
// idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if c.qc != nil {
			st := c.qc.ConnectionStats()
			c.log.Debug("peer: QUIC", "srtt", st.SmoothedRTT, "min_rtt", st.MinRTT, "rtt_dev", st.MeanDeviation,
				"cwnd", st.CongestionWindow, "packets_sent", st.PacketsSent, "packets_received", st.PacketsReceived,
				"packets_lost", st.PacketsLost, "ice_dropped", c.agent.Stats().Dropped)
			_ = c.qc.CloseWithError(0, "")
		}
		if c.tr != nil {
			_ = c.tr.Close()
		}
		c.stopSignals()
		_ = c.agent.Close()
		c.signals.Wait()
	})
	return nil
}
