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
	"github.com/icebreaker-net/icebreaker/internal/udpio"
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
	// queueLen bounds the STUN queue of the read loops and dataQueueLen
	// their application-data queue; more packets are dropped and
	// counted. The data queue holds a burst of a bulk transfer (a QUIC
	// congestion window at loopback speed) while the reader waits for a
	// CPU: a datagram dropped here is a loss that halves QUIC's window.
	queueLen     = 256
	dataQueueLen = 1024
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

	// Ta, Rc, Rm, RelayWait, Recheck and MaxPairs tune the checks, as
	// in CheckerConfig; zero means its defaults.
	Ta        time.Duration
	Rc, Rm    int
	RelayWait time.Duration
	Recheck   time.Duration
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

	// OnSelectedPairChange, when set, is called with each new selected
	// pair (a copy): the first one, the upgrade from a relayed pair to a
	// direct one, the move back to the relayed backup when the direct
	// pair went disconnected, and the pair an ICE restart selects. It is
	// called like OnStateChange, on the same goroutine, in order with
	// the state changes.
	OnSelectedPairChange func(Pair)

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
	// Set by NewAgent, then only read.
	cfg AgentConfig
	log *slog.Logger
	ch  agentChans

	// Closing: done is closed by Close, lost by the loop when consent is
	// lost; each is closed once.
	life struct {
		done, lost          chan struct{}
		closeOnce, lostOnce sync.Once
	}

	// The bases and every goroutine but the state callback's, under
	// their own lock.
	socks sockSet

	// mu guards the four groups below it (all but trickled.kick, a
	// channel). The loop takes the trickled candidates and reads the
	// restart credentials under it, and is the one writer of
	// sess.connected; Restart is the one writer of sess.restarting.
	mu        sync.Mutex
	creds     credentials
	gathering gathering
	sess      struct{ started, controlling, connected, restarting bool }
	trickled  trickleQueue

	// Published for the Conn, read without a lock; the state has a lock
	// of its own.
	path      atomic.Pointer[selectedPath] // by the loop: the selected pair, once there is one
	peers     atomic.Pointer[peerSet]      // by the loop: the peer addresses Conn.Read accepts
	lastWrite atomic.Int64                 // by the Conn: UnixNano of its latest Write
	counters  agentCounters
	state     stateNotifier

	// dropRx, set by tests only, drops the packets a socket (a relay's,
	// or a host socket) receives from an address: a path cut mid-stream.
	dropRx atomic.Pointer[func(relayed bool, from netip.AddrPort) bool]
}

// agentChans are the Agent's queues and handoffs, made by NewAgent.
type agentChans struct {
	stunIn chan rxPacket // STUN packets, read loops -> loop
	dataIn chan rxPacket // application data, read loops -> Conn.Read
	start  chan *session // Dial, Accept, Restart -> loop
	stop   chan *session // Dial, Accept, Restart giving up -> loop
}

// credentials are the local ICE credentials and those picked for the next
// ICE restart (empty until RestartCredentials). Guarded by Agent.mu.
type credentials struct {
	ufrag, pwd         string
	nextUfrag, nextPwd string
}

// gathering is what Gather and Regather found. once runs the first
// gathering; the rest is guarded by Agent.mu.
type gathering struct {
	once     sync.Once
	cands    []Candidate // the candidates in use
	err      error       // of the first gathering
	gen      int         // the newest gathering: 0 by Gather, then one per Regather
	next     []Candidate // Regather's candidates for the next Restart; nil: none
	failures []GatherFailure
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

// NewAgent validates and copies cfg and picks the credentials. It starts
// nothing and opens no socket.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg,
		log: cfg.Logger,
		ch: agentChans{
			stunIn: make(chan rxPacket, queueLen),
			dataIn: make(chan rxPacket, dataQueueLen),
			start:  make(chan *session),
			stop:   make(chan *session),
		},
		creds:    credentials{ufrag: cfg.LocalUfrag, pwd: cfg.LocalPwd},
		trickled: trickleQueue{kick: make(chan struct{}, 1)},
	}
	a.life.done = make(chan struct{})
	a.life.lost = make(chan struct{})
	a.state.cb = cfg.OnStateChange
	a.state.pathCB = cfg.OnSelectedPairChange
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.creds.ufrag == "" {
		a.creds.ufrag, a.creds.pwd = randomIceChars(UfragLen), randomIceChars(PwdLen)
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
	return a.creds.ufrag, a.creds.pwd
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
	closed := a.socks.isClosed()
	a.mu.Lock()
	started := a.sess.started
	a.sess.started = true
	if !started {
		a.sess.controlling = controlling
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
	ch, err := a.newChecker(locals, remotes, controlling, lufrag, lpwd, ufrag, pwd)
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

// newChecker makes the Checker of a session.
func (a *Agent) newChecker(locals, remotes []Candidate, controlling bool, lufrag, lpwd, rufrag, rpwd string) (*Checker, error) {
	return NewChecker(locals, remotes, CheckerConfig{
		Controlling: controlling,
		LocalUfrag:  lufrag, LocalPwd: lpwd,
		RemoteUfrag: rufrag, RemotePwd: rpwd,
		Ta: a.cfg.Ta, Rc: a.cfg.Rc, Rm: a.cfg.Rm,
		RelayWait: a.cfg.RelayWait, Recheck: a.cfg.Recheck, MaxPairs: a.cfg.MaxPairs,
		RemoteTrickle: a.cfg.RemoteTrickle, Lite: a.cfg.Lite,
	})
}

// run hands s to the loop and waits for its outcome.
func (a *Agent) run(ctx context.Context, op string, s *session) error {
	select {
	case a.ch.start <- s:
	case <-a.life.done:
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
	case <-a.life.done:
		return a.opErr(op, nil, net.ErrClosed)
	case <-ctx.Done():
		select {
		case a.ch.stop <- s:
		case <-a.life.done:
		}
		return fmt.Errorf("ice: %s: %w", op, ctx.Err())
	}
}

// Close closes the sockets, stops every goroutine the Agent started and
// waits for them. A Conn from Dial or Accept is closed with it. Calling
// Close again does nothing.
func (a *Agent) Close() error {
	a.life.closeOnce.Do(func() {
		// Take the sockets: retire may be closing others of the list
		// at the same time, and each socket is closed by one party.
		socks := a.socks.closeAll()
		close(a.life.done)
		for _, s := range socks {
			s.close()
		}
		a.socks.wg.Wait()
		a.state.set(ConnectionClosed)
		a.log.Info("ice: agent closed")
	})
	return nil
}

// context returns a context that ends with parent or when the Agent
// closes, for the requests of its goroutines; cancel releases it. (The
// Agent stores no context: its done channel is the one signal.)
func (a *Agent) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(doneContext(a.life.done), cancel)
	return ctx, func() { stop(); cancel() }
}

// doneContext is a context.Context that ends when its channel is closed.
type doneContext <-chan struct{}

func (doneContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c doneContext) Done() <-chan struct{}     { return c }
func (doneContext) Value(any) any               { return nil }
func (c doneContext) Err() error {
	if netx.Closed(c) {
		return context.Canceled
	}
	return nil
}

// opErr wraps err as the stdlib would.
func (a *Agent) opErr(op string, p *Pair, err error) error {
	if p == nil {
		return netx.OpError(op, "udp", nil, nil, err)
	}
	return netx.OpError(op, "udp", netx.UDPAddr(p.Local.Addr), netx.UDPAddr(p.Remote.Addr), err)
}

// readLoop reads one socket until it is closed, sending STUN to the loop
// and everything else to the Conn. RFC 7983, Section 7. A host socket is
// read a batch at a time (recvmmsg, where the platform has it).
func (a *Agent) readLoop(s *sock) {
	if s.reader != nil {
		a.readBatches(s)
		return
	}
	buf := make([]byte, maxPacket)
	for {
		n, from, err := s.read(buf)
		if err != nil {
			if !a.readFailed(s, err) {
				return
			}
			continue
		}
		a.received(s, buf[:n], from)
	}
}

// readBatch is how many datagrams one read of a host socket may return.
const readBatch = 8

// readBatches is readLoop for a host socket.
func (a *Agent) readBatches(s *sock) {
	ms := make([]udpio.Message, readBatch)
	for i := range ms {
		ms[i].Buf = make([]byte, maxPacket)
	}
	for {
		n, err := s.reader.ReadBatch(ms)
		if err != nil {
			if !a.readFailed(s, err) {
				return
			}
			continue
		}
		for i := range ms[:n] {
			a.received(s, ms[i].Buf[:ms[i].N], ms[i].Addr)
		}
	}
}

// readFailed handles a read error of s: it reports whether the loop goes
// on (the error is counted) or ends (the socket is closed, or a relay is
// lost).
func (a *Agent) readFailed(s *sock, err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	if s.relay != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		a.log.Warn("ice: relay lost", "relay", s.addr, "err", err)
		return false
	}
	select {
	case <-a.life.done:
		return false
	default:
	}
	a.counters.malformed.Add(1)
	return true
}

// received queues one datagram read from s: STUN for the loop, the rest
// for the Conn. b is the read buffer, copied here.
func (a *Agent) received(s *sock, b []byte, from netip.AddrPort) {
	if len(b) == 0 {
		a.counters.malformed.Add(1)
		return
	}
	p := rxPacket{s: s, from: netx.Unmap(from), at: time.Now()}
	if drop := a.dropRx.Load(); drop != nil && (*drop)(s.relay != nil, p.from) {
		return
	}
	q := a.ch.dataIn
	if stun.Classify(b) == stun.KindSTUN {
		// The loop may hold a check or keep it for a restart.
		p.b = append([]byte(nil), b...)
		q = a.ch.stunIn
	} else {
		p.buf = netx.CopyBuf(b)
		p.b = *p.buf
	}
	select {
	case q <- p:
	default:
		netx.FreeBuf(p.buf)
		a.counters.dropped.Add(1)
	}
}

// keepalive sends a Binding indication on the selected pair. RFC 8445,
// Section 11.
func (a *Agent) keepalive(p *Pair) {
	s := a.socks.forBase(p.Local.BaseAddr())
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
