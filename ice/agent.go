package ice

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

// Defaults of AgentConfig.
const (
	// DefaultKeepalive is the keepalive interval Tr of RFC 8445, Section
	// 11: a Binding indication goes out on the selected pair when nothing
	// was sent on it for this long.
	DefaultKeepalive = 15 * time.Second
	// DefaultSTUNTimeout bounds each server-reflexive Binding.
	DefaultSTUNTimeout = 3 * time.Second
	// DefaultConsentInterval is the mean interval of consent checks,
	// RFC 7675, Section 5.1 (each one is randomized to 0.8-1.2 times it).
	DefaultConsentInterval = 5 * time.Second
	// DefaultConsentTimeout is how long consent lasts without a
	// successful consent check. RFC 7675, Section 5.1.
	DefaultConsentTimeout = 30 * time.Second
	// UfragLen and PwdLen are the lengths of generated credentials, above
	// the minimums of RFC 8445, Section 5.3 (4 and 22 ice-chars).
	UfragLen = 8
	PwdLen   = 24
	// early is how many checks received before Dial or Accept are kept
	// and answered once the Checker exists.
	early = 16
	// queueLen bounds the STUN and application-data queues of the read
	// loops; more packets are dropped and counted.
	queueLen = 256
	// maxPacket is the read buffer size.
	maxPacket = 1 << 16
)

// Errors an Agent returns that callers branch on.
var (
	// ErrFailed is returned by Dial and Accept when every candidate pair
	// failed. RFC 8445, Section 8.1.2.
	ErrFailed = errors.New("ice: connectivity checks failed")
	// ErrStarted is returned by a second Dial or Accept: an Agent runs
	// one ICE session.
	ErrStarted = errors.New("ice: agent already started")
	// ErrNoCandidates is wrapped by the error of Gather when it found no
	// candidate: no host address could be bound (or RelayOnly) and no
	// relay allocated. The error says why; AgentStats.GatherFailures
	// lists each server's failure.
	ErrNoCandidates = errors.New("ice: no candidate gathered")
	// ErrConsentLost is wrapped (in a *net.OpError) by the Conn's Read
	// and Write once the peer stopped answering consent checks for
	// AgentConfig.ConsentTimeout; the Agent then sends nothing more on
	// the path. RFC 7675, Section 5.1. Close the Agent.
	ErrConsentLost = errors.New("ice: consent to send lost: the peer stopped answering (RFC 7675)")
)

// AgentConfig configures an Agent. The zero value gathers host candidates
// on every non-loopback, non-link-local address, IPv4 and IPv6, with no
// STUN server. NewAgent copies it.
type AgentConfig struct {
	// Gather selects the candidates: see GatherConfig.
	Gather GatherConfig

	// LocalUfrag and LocalPwd are this agent's credentials; empty means
	// random ones (RFC 8445, Section 5.3). Both or neither.
	LocalUfrag, LocalPwd string

	// Ta, Rc, Rm, RelayWait and MaxPairs tune the checks, as in
	// CheckerConfig; zero means its defaults.
	Ta        time.Duration
	Rc, Rm    int
	RelayWait time.Duration
	MaxPairs  int

	// Keepalive is the interval Tr of RFC 8445, Section 11; 0 means
	// DefaultKeepalive, a negative value disables keepalives.
	Keepalive time.Duration

	// ConsentInterval is the mean interval of consent checks once
	// connected (RFC 7675, Section 5.1), each randomized to 0.8-1.2
	// times it; 0 means DefaultConsentInterval, a negative value
	// disables consent freshness. ConsentTimeout is how long consent
	// lasts without an answer; 0 means DefaultConsentTimeout.
	ConsentInterval, ConsentTimeout time.Duration

	// DisconnectedAfter is how long the selected pair's consent checks
	// may go unanswered before the state is ConnectionDisconnected; 0
	// means two and a half ConsentIntervals.
	DisconnectedAfter time.Duration

	// RemoteTrickle says that the peer trickles its candidates (RFC
	// 8838): Dial and Accept may get few or none, more come through
	// AddRemoteCandidate, and the checks do not fail before
	// RemoteCandidatesDone.
	RemoteTrickle bool

	// Lite makes a lite agent (RFC 8445, Section 2.5), for a server
	// with a public address whose peers run full ICE: host candidates
	// only (no STUN or TURN servers), Accept only (always controlled,
	// Section 6.1.1), no checks of its own: it answers the full peer's
	// and selects the pair that peer nominates. It sends keepalives but
	// no consent checks (those are the full peer's, RFC 7675), and it
	// answers the peer's consent checks.
	Lite bool

	// OnStateChange, when set, is called with every change of the
	// connection state, in order, on a goroutine of the Agent's (never
	// the caller's, never two at once); it may call the Agent's methods,
	// Close included. The last call is ConnectionClosed, which may come
	// after Close returned.
	OnStateChange func(ConnectionState)

	// Logger receives lifecycle events (gathering, selection, close),
	// never per-packet ones. nil is silent.
	Logger *slog.Logger
}

// Validate reports a configuration error.
func (c *AgentConfig) Validate() error {
	if (c.LocalUfrag == "") != (c.LocalPwd == "") {
		return errors.New("ice: AgentConfig: LocalUfrag and LocalPwd go together")
	}
	if c.LocalUfrag != "" {
		if err := validCredential(c.LocalUfrag, 4, 256); err != nil {
			return fmt.Errorf("ice: AgentConfig.LocalUfrag: %w", err)
		}
		if err := validCredential(c.LocalPwd, 22, 256); err != nil {
			return fmt.Errorf("ice: AgentConfig.LocalPwd: %w", err)
		}
	}
	if c.Ta < 0 || c.Rc < 0 || c.Rm < 0 {
		return errors.New("ice: AgentConfig: negative Ta, Rc or Rm")
	}
	if c.ConsentTimeout < 0 || c.DisconnectedAfter < 0 {
		return errors.New("ice: AgentConfig: negative ConsentTimeout or DisconnectedAfter")
	}
	if c.Lite && (len(c.Gather.STUNServers) > 0 || len(c.Gather.TURNServers) > 0 || c.Gather.RelayOnly) {
		return errors.New("ice: AgentConfig: a lite agent gathers host candidates only (no STUN or TURN servers)")
	}
	if err := (ChecklistConfig{MaxPairs: c.MaxPairs}).Validate(); err != nil {
		return err
	}
	return c.Gather.Validate()
}

// validCredential checks an ice-char string's length, RFC 8445, Section 5.3
// and RFC 8839, Section 5.4.
func validCredential(s string, minLen, maxLen int) error {
	if len(s) < minLen || len(s) > maxLen {
		return fmt.Errorf("length %d outside %d..%d", len(s), minLen, maxLen)
	}
	if !allChars(s, isIceChar) {
		return errors.New("not all ice-chars")
	}
	return nil
}

// iceChars are the 64 ice-chars, so a random byte's low 6 bits pick one
// uniformly.
const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// randomIceChars returns n random ice-chars from crypto/rand.
func randomIceChars(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = iceChars[b[i]&63]
	}
	return string(b)
}

// Agent is an ICE agent for one component over UDP (RFC 8445): it gathers
// host and server-reflexive candidates on its own sockets and relayed ones
// through TURN servers, runs the
// connectivity checks of a Checker, and hands the selected pair to the
// application as a net.Conn that shares the sockets with STUN, the two
// demultiplexed per RFC 7983.
//
// NewAgent starts nothing. Gather binds the sockets and starts one read
// goroutine per socket and one loop goroutine that owns the Checker and its
// timer; Close (or closing the Conn) stops them all and waits for them.
// The one exception is the goroutine that calls AgentConfig.OnStateChange:
// so that the callback may itself call Close, Close does not wait for it;
// it ends once it has delivered ConnectionClosed. An Agent runs one
// session: Dial or Accept once. Its methods are safe for concurrent use.
type Agent struct {
	cfg        AgentConfig
	log        *slog.Logger
	ufrag, pwd string

	stunIn  chan rxPacket      // STUN packets, read loops -> loop
	dataIn  chan rxPacket      // application data, read loops -> Conn.Read
	startCh chan *session      // Dial/Accept -> loop
	stopCh  chan *session      // Dial/Accept giving up -> loop
	done    chan struct{}      // closed by Close
	ctx     context.Context    // cancelled by Close
	cancel  context.CancelFunc // of ctx

	lost     chan struct{} // closed by the loop when consent is lost
	lostOnce sync.Once

	gatherOnce sync.Once
	gathered   []Candidate // guarded by mu: the candidates in use
	gatherErr  error       // guarded by mu
	// Guarded by mu: the generation of the newest gathering, and the
	// candidates Regather found for the next Restart (nil: none).
	gen        int
	regathered []Candidate
	failures   []GatherFailure // of the newest gathering

	mu      sync.Mutex // guards socks, closed, started, wg.Add
	socks   []*sock
	closed  bool
	started bool
	wg      sync.WaitGroup

	closeOnce sync.Once
	path      atomic.Pointer[selectedPath] // the selected pair, once there is one
	peers     atomic.Pointer[peerSet]      // the peer addresses Conn.Read accepts
	lastWrite atomic.Int64                 // UnixNano of the Conn's latest Write
	counters  agentCounters

	state stateNotifier

	// Guarded by mu: the role of the first session, the credentials
	// picked for an ICE restart, and trickled remote candidates that the
	// loop has not taken yet (see AddRemoteCandidate).
	controlling        bool
	nextUfrag, nextPwd string
	trickled           trickleQueue
	connected          bool // a session selected a pair
	restarting         bool // a Restart is running
}

// rxPacket is a packet a read loop received.
type rxPacket struct {
	s    *sock
	from netip.AddrPort
	b    []byte
	buf  *[]byte // application data: the pooled buffer b is in (netx.FreeBuf)
	at   time.Time
}

// selectedPath is the selected pair with the socket of its local base,
// which the loop publishes for the Conn, so that a Write needs no lock.
// A published one is never modified.
type selectedPath struct {
	pair Pair
	s    *sock // nil when the base is gone
}

// selectedPair returns the selected pair, or nil.
func (a *Agent) selectedPair() *Pair {
	if sp := a.path.Load(); sp != nil {
		return &sp.pair
	}
	return nil
}

// session is one run of the checks, started by Dial, Accept or Restart.
type session struct {
	checker  *Checker
	result   chan error // buffered; nil error: connected
	restart  bool       // started by Restart: a pair is already selected
	reported bool       // the result was sent
	// prev is the connected session a restart replaces: until the
	// restart selects a pair it keeps answering the peer's checks with
	// the old credentials and runs consent on the old pair, and it comes
	// back if the restart is given up or fails.
	prev *session
	// answered counts the consent answers of this session's Checker
	// that the Agent has counted.
	answered uint64
}

// consentSession is the session that runs consent freshness: the current
// one, or while a restart has not selected a pair, the one it replaces.
func (s *session) consentSession() *session {
	if !s.reported && s.prev != nil {
		return s.prev
	}
	return s
}

// NewAgent validates and copies cfg and picks the credentials. It starts
// nothing and opens no socket.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger,
		ufrag:    cfg.LocalUfrag,
		pwd:      cfg.LocalPwd,
		stunIn:   make(chan rxPacket, queueLen),
		dataIn:   make(chan rxPacket, queueLen),
		startCh:  make(chan *session),
		stopCh:   make(chan *session),
		done:     make(chan struct{}),
		lost:     make(chan struct{}),
		trickled: trickleQueue{kick: make(chan struct{}, 1)},
	}
	a.state.cb = cfg.OnStateChange
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.ufrag == "" {
		a.ufrag, a.pwd = randomIceChars(UfragLen), randomIceChars(PwdLen)
	}
	if a.cfg.Keepalive == 0 {
		a.cfg.Keepalive = DefaultKeepalive
	}
	if a.cfg.ConsentInterval == 0 {
		a.cfg.ConsentInterval = DefaultConsentInterval
	}
	if a.cfg.ConsentTimeout == 0 {
		a.cfg.ConsentTimeout = DefaultConsentTimeout
	}
	if a.cfg.DisconnectedAfter == 0 {
		a.cfg.DisconnectedAfter = a.cfg.ConsentInterval * 5 / 2
	}
	return a, nil
}

// LocalCredentials returns the agent's ufrag and password, to send to the
// peer with the candidates. RFC 8445, Section 5.3.
// After an ICE restart they are the restart's.
func (a *Agent) LocalCredentials() (ufrag, pwd string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ufrag, a.pwd
}

// SelectedPair returns a copy of the selected pair, or false before there
// is one.
func (a *Agent) SelectedPair() (Pair, bool) {
	if p := a.selectedPair(); p != nil {
		return *p, true
	}
	return Pair{}, false
}

// Dial runs the checks as the controlling agent against the peer's
// credentials and candidates, and returns the selected path once a pair is
// nominated. It gathers first if Gather was not called. When ctx ends
// first, the checks stop and the Agent cannot be dialled again; Close it.
func (a *Agent) Dial(ctx context.Context, remoteUfrag, remotePwd string, remotes []Candidate) (net.Conn, error) {
	return a.connect(ctx, true, remoteUfrag, remotePwd, remotes)
}

// Accept is Dial for the controlled agent: it answers the peer's checks,
// runs its own, and returns when the peer has nominated a pair.
func (a *Agent) Accept(ctx context.Context, remoteUfrag, remotePwd string, remotes []Candidate) (net.Conn, error) {
	return a.connect(ctx, false, remoteUfrag, remotePwd, remotes)
}

func (a *Agent) connect(ctx context.Context, controlling bool, ufrag, pwd string, remotes []Candidate) (net.Conn, error) {
	op := "accept"
	if controlling {
		op = "dial"
	}
	if controlling && a.cfg.Lite {
		return nil, errors.New("ice: a lite agent cannot Dial: it is always controlled, use Accept")
	}
	a.mu.Lock()
	closed, started := a.closed, a.started
	a.started = true
	if !started {
		a.controlling = controlling
	}
	a.mu.Unlock()
	switch {
	case closed:
		return nil, a.opErr(op, nil, net.ErrClosed)
	case started:
		return nil, ErrStarted
	}
	locals, err := a.Gather(ctx)
	if err != nil {
		return nil, err
	}
	lufrag, lpwd := a.LocalCredentials()
	ch, err := NewChecker(locals, remotes, CheckerConfig{
		Controlling: controlling,
		LocalUfrag:  lufrag, LocalPwd: lpwd,
		RemoteUfrag: ufrag, RemotePwd: pwd,
		Ta: a.cfg.Ta, Rc: a.cfg.Rc, Rm: a.cfg.Rm,
		RelayWait: a.cfg.RelayWait, MaxPairs: a.cfg.MaxPairs,
		RemoteTrickle: a.cfg.RemoteTrickle, Lite: a.cfg.Lite,
	})
	if err != nil {
		return nil, err
	}
	a.permit(remotes)
	s := &session{checker: ch, result: make(chan error, 1)}
	if err := a.run(ctx, op, s); err != nil {
		return nil, err
	}
	p, _ := a.SelectedPair()
	a.log.Info("ice: connected", "pair", p.String())
	return newConn(a), nil
}

// run hands s to the loop and waits for its outcome.
func (a *Agent) run(ctx context.Context, op string, s *session) error {
	select {
	case a.startCh <- s:
	case <-a.done:
		return a.opErr(op, nil, net.ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("ice: %s: %w", op, ctx.Err())
	}
	select {
	case err := <-s.result:
		if err != nil {
			return fmt.Errorf("ice: %s: %w", op, err)
		}
		return nil
	case <-a.done:
		return a.opErr(op, nil, net.ErrClosed)
	case <-ctx.Done():
		select {
		case a.stopCh <- s:
		case <-a.done:
		}
		return fmt.Errorf("ice: %s: %w", op, ctx.Err())
	}
}

// Close closes the sockets, stops every goroutine the Agent started and
// waits for them. A Conn from Dial or Accept is closed with it. Calling
// Close again does nothing.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		// Take the sockets: retire may be closing others of the list
		// at the same time, and each socket is closed by one party.
		socks := a.socks
		a.socks = nil
		a.mu.Unlock()
		close(a.done)
		a.cancel()
		for _, s := range socks {
			s.close()
		}
		a.wg.Wait()
		a.state.set(ConnectionClosed)
		a.log.Info("ice: agent closed")
	})
	return nil
}

// opErr wraps err as the stdlib would.
func (a *Agent) opErr(op string, p *Pair, err error) error {
	if p == nil {
		return netx.OpError(op, "udp", nil, nil, err)
	}
	return netx.OpError(op, "udp", netx.UDPAddr(p.Local.Addr), netx.UDPAddr(p.Remote.Addr), err)
}

// sockFor returns the socket bound to base, or nil.
func (a *Agent) sockFor(base netip.AddrPort) *sock {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.socks {
		if s.addr == base {
			return s
		}
	}
	return nil
}

// readLoop reads one socket until it is closed, sending STUN to the loop
// and everything else to the Conn. RFC 7983, Section 7.
func (a *Agent) readLoop(s *sock) {
	defer a.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := s.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if s.relay != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				a.log.Warn("ice: relay lost", "relay", s.addr, "err", err)
				return
			}
			select {
			case <-a.done:
				return
			default:
			}
			a.counters.malformed.Add(1)
			continue
		}
		if n == 0 {
			a.counters.malformed.Add(1)
			continue
		}
		p := rxPacket{s: s, from: netx.Unmap(from), at: time.Now()}
		q := a.dataIn
		if stun.Classify(buf[:n]) == stun.KindSTUN {
			// The loop may hold a check or keep it for a restart.
			p.b = append([]byte(nil), buf[:n]...)
			q = a.stunIn
		} else {
			p.buf = netx.CopyBuf(buf[:n])
			p.b = *p.buf
		}
		select {
		case q <- p:
		default:
			netx.FreeBuf(p.buf)
			a.counters.dropped.Add(1)
		}
	}
}

// loop owns the Checker and its timer: it hands STUN packets to the
// Checker or to the socket's STUN client, sends what the Checker asks for,
// keeps the selected pair alive and its consent fresh, reports the outcome
// to Dial, Accept or Restart, and records the connection state.
func (a *Agent) loop() {
	var (
		cur      *session
		held     []rxPacket // checks for a session that has not started
		timer    = time.NewTimer(time.Hour)
		lastSent time.Time // of the selected pair, for keepalives
		// consent freshness, RFC 7675: since when the selected pair
		// has consent without an answer, when the next check goes out,
		// and the answers of the current session counted so far
		consentSince, nextConsent time.Time
	)
	timer.Stop()
	defer timer.Stop()
	// fail ends the current session with err: ErrFailed when its checks
	// failed, ErrConsentLost. A failed restart reports to Restart and
	// gives the connection back to the session it replaced; anything
	// else ends the connection.
	// The state is set before the result goes out, so that a caller
	// that Dial, Accept or Restart returned to sees the state it caused.
	fail := func(err error) {
		rollback := cur.restart && cur.prev != nil && err == ErrFailed
		if rollback {
			a.state.set(ConnectionConnected)
		} else {
			a.state.set(ConnectionFailed)
		}
		if !cur.reported {
			cur.reported = true
			cur.result <- err
		}
		if rollback {
			a.mu.Lock()
			a.restarting = false
			a.mu.Unlock()
			cur = cur.prev
			return
		}
		if cur.restart || err != ErrFailed {
			a.lostOnce.Do(func() { close(a.lost) })
		}
		cur = nil
		timer.Stop()
	}
	run := func(now time.Time) {
		if cur == nil {
			return
		}
		a.takeRemotes(cur)
		out, next := cur.checker.Next(now)
		if cur.prev != nil && !cur.reported {
			// the replaced session's answers to the peer's checks
			pout, pnext := cur.prev.checker.Next(now)
			out, next = append(out, pout...), earliest(next, pnext)
		}
		a.publishPeers(cur)
		sel := a.selectedPair()
		for _, o := range out {
			if s := a.sockFor(o.From); s != nil {
				s.post(o.Packet, o.To)
				if sel != nil && o.From == sel.Local.BaseAddr() && o.To == sel.Remote.Addr {
					lastSent = now
				}
			}
		}
		if p, ok := cur.checker.Selected(); ok && (!cur.reported || !samePath(sel, &p)) {
			if sel == nil || !samePath(sel, &p) {
				a.path.Store(&selectedPath{pair: p, s: a.sockFor(p.Local.BaseAddr())})
				lastSent = now
				consentSince = now // the pair's check just succeeded
				nextConsent = now.Add(jitter(a.cfg.ConsentInterval))
				if sel != nil {
					a.log.Info("ice: selected pair changed", "pair", p.String())
				}
			}
			if !cur.reported {
				cur.reported = true
				cur.prev = nil
				a.mu.Lock()
				a.connected, a.restarting = true, false
				a.mu.Unlock()
				a.state.set(ConnectionConnected)
				cur.result <- nil
			}
		}
		if !cur.reported && cur.checker.State() == StateFailed {
			a.log.Warn("ice: every candidate pair failed", "restart", cur.restart)
			fail(ErrFailed)
			if cur == nil {
				return
			}
		}
		if sel = a.selectedPair(); sel != nil && a.cfg.Keepalive > 0 {
			last := lastSent
			if w := a.lastWrite.Load(); w > last.UnixNano() {
				last = time.Unix(0, w)
			}
			if ka := last.Add(a.cfg.Keepalive); !now.Before(ka) {
				a.keepalive(sel)
				lastSent = now
				next = earliest(next, now.Add(a.cfg.Keepalive))
			} else {
				next = earliest(next, ka)
			}
		}
		if sel != nil && a.cfg.ConsentInterval > 0 && !a.cfg.Lite {
			cs := cur.consentSession()
			if n := cs.checker.consent.answered; n != cs.answered {
				a.counters.consentOK.Add(n - cs.answered)
				cs.answered = n
				consentSince = maxTime(consentSince, cs.checker.consent.last)
			}
			expiry := consentSince.Add(a.cfg.ConsentTimeout)
			if !now.Before(expiry) {
				a.log.Warn("ice: consent lost", "pair", sel.String(), "after", a.cfg.ConsentTimeout)
				fail(ErrConsentLost)
				return
			}
			if cs.reported {
				if disc := consentSince.Add(a.cfg.DisconnectedAfter); now.Before(disc) {
					a.state.set(ConnectionConnected)
					next = earliest(next, disc)
				} else {
					a.state.set(ConnectionDisconnected)
				}
			}
			if !now.Before(nextConsent) {
				if o, ok := cs.checker.consentCheck(); ok {
					if s := a.sockFor(o.From); s != nil && s.post(o.Packet, o.To) {
						a.counters.consents.Add(1)
					}
				}
				nextConsent = now.Add(jitter(a.cfg.ConsentInterval))
			}
			next = earliest(earliest(next, nextConsent), expiry)
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(time.Now()), 0))
		}
	}
	for {
		select {
		case <-a.done:
			return
		case s := <-a.startCh:
			if cur != nil && !cur.reported {
				cur.result <- errors.New("superseded by an ICE restart")
				cur = cur.prev
			}
			if s.restart {
				s.prev = cur
			}
			cur = s
			a.state.set(ConnectionChecking)
			now := time.Now()
			for _, p := range held {
				cur.checker.Handle(p.b, p.s.addr, p.from, now)
			}
			held = nil
			run(now)
		case s := <-a.stopCh:
			if cur == s {
				cur = s.prev // a restart given up: the old session goes on
				if s.restart {
					a.mu.Lock()
					a.restarting = false
					a.mu.Unlock()
				}
				if cur != nil {
					a.state.set(ConnectionConnected)
					run(time.Now())
				} else {
					timer.Stop()
				}
			}
		case <-a.trickled.kick:
			run(time.Now())
		case p := <-a.stunIn:
			a.handleSTUN(cur, &held, p)
			run(time.Now())
		case <-timer.C:
			run(time.Now())
		}
	}
}

// handleSTUN gives a STUN packet to the Checker, or when the Checker does
// not want it (a response to no check of its) to the socket's STUN client.
// Checks that arrive before their session starts are held, a few of them:
// before Dial or Accept, and checks that already use the credentials of an
// ICE restart that has not started here yet.
func (a *Agent) handleSTUN(cur *session, held *[]rxPacket, p rxPacket) {
	var m stun.Message
	parsed := m.Parse(p.b) == nil
	if cur != nil && parsed && m.Type == stun.BindingRequest && a.forRestart(&m) {
		if len(*held) < early {
			*held = append(*held, p)
		}
		return
	}
	if cur != nil && cur.prev != nil && !cur.reported && parsed {
		// During a restart, the peer's checks with the old credentials
		// (its consent checks, say) are the replaced session's, and so
		// are the answers to its consent checks.
		if m.Type.Class == stun.ClassRequest && localUfrag(&m) == cur.prev.checker.cfg.LocalUfrag ||
			m.Type.Class != stun.ClassRequest && cur.prev.checker.consentPending(m.TransactionID) {
			if err := cur.prev.checker.Handle(p.b, p.s.addr, p.from, p.at); err != nil {
				a.counters.malformed.Add(1)
			}
			return
		}
	}
	if cur != nil {
		err := cur.checker.Handle(p.b, p.s.addr, p.from, p.at)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrDropped) {
			a.counters.malformed.Add(1)
			return
		}
	}
	if p.s.client != nil && p.s.client.HandlePacket(p.b, p.from) {
		return
	}
	if cur == nil && len(*held) < early && parsed && m.Type == stun.BindingRequest {
		*held = append(*held, p)
		return
	}
	if cur != nil || m.Type != stun.BindingIndication {
		a.counters.malformed.Add(1)
	}
}

// keepalive sends a Binding indication on the selected pair. RFC 8445,
// Section 11.
func (a *Agent) keepalive(p *Pair) {
	s := a.sockFor(p.Local.BaseAddr())
	if s == nil {
		return
	}
	b := stun.AppendHeader(make([]byte, 0, 28), stun.BindingIndication, stun.NewTransactionID())
	b = stun.AppendFingerprint(b)
	if s.post(b, p.Remote.Addr) {
		a.counters.kas.Add(1)
	}
}

// samePath reports whether two pairs send between the same addresses.
func samePath(p, q *Pair) bool {
	return p.Local.BaseAddr() == q.Local.BaseAddr() && p.Remote.Addr == q.Remote.Addr
}

// earliest returns the earlier of two times, where zero means never.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
