package ice

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// Defaults of CheckerConfig.
const (
	// DefaultTa is the pacing interval of new checks. RFC 8445, Section
	// 14.2, recommends 50 ms.
	DefaultTa = 50 * time.Millisecond
	// DefaultRelayWait is how long the controlling agent waits for a
	// direct pair once only relayed pairs have succeeded.
	DefaultRelayWait = 300 * time.Millisecond
	// DefaultRecheck is how long an agent on a relayed pair waits, once
	// every direct pair has failed, before it checks them again.
	DefaultRecheck = 15 * time.Second
	// minCheckRTO is the floor of a check's RTO. RFC 8445, Section 14.3.
	minCheckRTO = 500 * time.Millisecond
	// maxPending bounds the responses queued between Handle and Next.
	maxPending = 256
)

// CheckerConfig configures a Checker. The zero value of each optional field
// means its documented default; the credentials are required. It is a plain
// value, copied by NewChecker.
type CheckerConfig struct {
	// Controlling is the initial role. RFC 8445, Section 6.1.1.
	Controlling bool
	// TieBreaker resolves role conflicts (RFC 8445, Section 7.3.1.1);
	// 0 means a random one.
	TieBreaker uint64

	// LocalUfrag/LocalPwd are this agent's credentials, RemoteUfrag/
	// RemotePwd the peer's. RFC 8445, Section 5.3.
	LocalUfrag, LocalPwd   string
	RemoteUfrag, RemotePwd string

	// Ta paces new checks, one per Ta; 0 means DefaultTa.
	Ta time.Duration
	// Rc and Rm are the retransmission counts of RFC 8489, Section 6.2.1,
	// for checks; 0 means stunclient.DefaultRc and DefaultRm. The RTO is
	// RFC 8445, Section 14.3's.
	Rc, Rm int
	// RelayWait is how long the controlling agent waits, once only
	// pairs with a relayed candidate have succeeded, for a direct pair
	// before it nominates the relayed one; 0 means DefaultRelayWait, a
	// negative value no wait.
	RelayWait time.Duration
	// Recheck is how long the agent waits, while a relayed pair is
	// selected and every direct pair has failed, before it checks the
	// failed direct pairs again, and again after each such round: a NAT
	// or firewall that dropped the first checks may let later ones
	// through, and the relayed pair is then left for the direct one as
	// after a late success. 0 means DefaultRecheck, a negative value
	// never.
	Recheck time.Duration
	// MaxPairs limits the check list, as in ChecklistConfig. Pairs
	// learned from checks and trickled candidates may grow it to twice
	// that, no further.
	MaxPairs int
	// RemoteTrickle says that the peer trickles its candidates (RFC
	// 8838): more arrive through AddRemoteCandidate, and the Checker
	// does not declare failure before RemoteCandidatesDone, the peer's
	// end-of-candidates (RFC 8838, Section 8.2).
	RemoteTrickle bool
	// Lite makes this a lite agent (RFC 8445, Sections 2.5 and 6.1.1):
	// always controlled, it sends no check of its own and only answers
	// the full peer's; a check with USE-CANDIDATE selects its pair
	// (Section 7.3.1.5). The peer must be a full agent.
	Lite bool
}

// Validate reports a configuration error.
func (c *CheckerConfig) Validate() error {
	switch {
	case c.LocalUfrag == "" || c.LocalPwd == "":
		return errors.New("ice: CheckerConfig: local credentials missing")
	case c.RemoteUfrag == "" || c.RemotePwd == "":
		return errors.New("ice: CheckerConfig: remote credentials missing")
	case c.Ta < 0:
		return fmt.Errorf("ice: CheckerConfig.Ta %v is negative", c.Ta)
	case c.Rc < 0 || c.Rm < 0:
		return fmt.Errorf("ice: CheckerConfig: Rc %d / Rm %d negative", c.Rc, c.Rm)
	case c.Lite && c.Controlling:
		return errors.New("ice: CheckerConfig: a lite agent is always controlled (RFC 8445, Section 6.1.1)")
	}
	return ChecklistConfig{MaxPairs: c.MaxPairs}.Validate()
}

// State is the connection state of a Checker. Failed is final: it is
// reached when the check list has pairs, all of them failed, no valid pair
// exists and no check is pending. A Checker without any pair stays
// Checking (a peer-reflexive pair may still appear); the driver bounds the
// whole procedure with its own timeout.
type State uint8

const (
	StateChecking  State = iota // checks running, nothing selected yet
	StateConnected              // a nominated pair is selected
	StateFailed                 // every pair failed and nothing is pending
)

func (s State) String() string {
	switch s {
	case StateChecking:
		return "Checking"
	case StateConnected:
		return "Connected"
	case StateFailed:
		return "Failed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Outgoing is a packet to send from the local base From to To. Packet is a
// fresh buffer that belongs to the receiver.
type Outgoing struct {
	From, To netip.AddrPort
	Packet   []byte
}

// Checker runs the connectivity checks and regular nomination of one ICE
// component over UDP, RFC 8445, Sections 6.1.4, 7 and 8, sans-IO: the
// driver feeds it the packets received on its bases with Handle, and sends
// what Next returns at the times Next asks for. It opens no socket, starts
// no goroutine and reads no clock: time is an argument.
//
// A Checker is not safe for concurrent use: one owner (the driver's loop)
// calls it. The packets of Outgoing belong to the caller.
type Checker struct {
	cfg                 CheckerConfig
	localKey, remoteKey []byte
	tieBreaker          uint64

	locals, remotes []Candidate
	cl              *Checklist
	info            map[*Pair]*pairInfo
	txs             []*transaction
	triggered       []queued
	pending         []Outgoing
	nextCheck       time.Time // earliest time of the next new check
	idle            bool      // no check could start; cleared by any change

	nom        nomination
	state      State
	limit      int  // the most pairs the check list may hold
	remoteDone bool // no more remote candidates will come
	nprflx     int  // peer-reflexive remote candidates learned
	consent    consent
	bk         backup // the relayed pair kept while a direct one is selected
	scratch    stun.Message
}

// pairInfo is the Checker's per-pair state beyond the Pair's.
type pairInfo struct {
	valid     *Pair              // the valid pair this pair's check produced
	tx        stun.TransactionID // the pair's current transaction
	inFlight  bool               // tx is live
	nominated bool               // (valid pairs) nominated, RFC 8445, Section 8.1.1
	nomTries  int                // (valid pairs) USE-CANDIDATE checks run
	// nominateOnSuccess: USE-CANDIDATE arrived while the pair's check
	// was pending, RFC 8445, Section 7.3.1.5.
	nominateOnSuccess bool
}

// queued is an entry of the triggered-check queue. RFC 8445, Section 6.1.4.1.
type queued struct {
	pair     *Pair
	nominate bool
}

// transaction is a check in flight.
type transaction struct {
	id          stun.TransactionID
	pair        *Pair
	from, to    netip.AddrPort
	packet      []byte
	priority    uint32 // PRIORITY sent
	controlling bool   // role sent
	nominate    bool   // USE-CANDIDATE sent
	rt          stunclient.Retransmit
	attempt     int
	start       time.Time
	next        time.Time // next retransmission, or the timeout when final
	final       bool
	cancelled   bool // RFC 8445, Section 7.3.1.4: no retransmit, no failure
}

// NewChecker forms the check list from the local and remote candidates
// (RFC 8445, Section 6.1.2) and sets the initial states. Only UDP
// candidates take part; local candidates should carry their Base. The
// candidates and the configuration are copied.
func NewChecker(locals, remotes []Candidate, cfg CheckerConfig) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Ta == 0 {
		cfg.Ta = DefaultTa
	}
	if cfg.RelayWait == 0 {
		cfg.RelayWait = DefaultRelayWait
	}
	if cfg.Recheck == 0 {
		cfg.Recheck = DefaultRecheck
	}
	c := &Checker{cfg: cfg, info: make(map[*Pair]*pairInfo), remoteDone: !cfg.RemoteTrickle}
	c.limit = 2 * cmp.Or(cfg.MaxPairs, DefaultMaxPairs)
	var err error
	if c.localKey, err = stun.ShortTermKey(cfg.LocalPwd); err != nil {
		return nil, fmt.Errorf("ice: local password: %w", err)
	}
	if c.remoteKey, err = stun.ShortTermKey(cfg.RemotePwd); err != nil {
		return nil, fmt.Errorf("ice: remote password: %w", err)
	}
	c.tieBreaker = cfg.TieBreaker
	if c.tieBreaker == 0 {
		var b [8]byte
		rand.Read(b[:])
		c.tieBreaker = binary.BigEndian.Uint64(b[:]) | 1
	}
	notUDP := func(c Candidate) bool { return c.Transport != TransportUDP }
	c.locals = slices.DeleteFunc(slices.Clone(locals), notUDP)
	c.remotes = slices.DeleteFunc(slices.Clone(remotes), notUDP)
	c.cl, err = NewChecklist(c.locals, c.remotes, cfg.Controlling, ChecklistConfig{MaxPairs: cfg.MaxPairs})
	if err != nil {
		return nil, err
	}
	c.cl.SetInitialStates()
	for _, p := range c.cl.pairs {
		c.info[p] = &pairInfo{}
	}
	return c, nil
}

// State returns the connection state.
func (c *Checker) State() State { return c.state }

// Controlling reports the current role, which a role conflict may change.
func (c *Checker) Controlling() bool { return c.cl.Controlling() }

// Selected returns a copy of the selected pair, or false while there is
// none.
func (c *Checker) Selected() (Pair, bool) {
	if c.nom.selected == nil {
		return Pair{}, false
	}
	return *c.nom.selected, true
}

// Valid returns copies of the valid pairs (RFC 8445, Section 7.2.5.3.2),
// in decreasing priority order.
func (c *Checker) Valid() []Pair {
	out := make([]Pair, 0, len(c.nom.valid))
	for _, p := range c.nom.valid {
		out = append(out, *p)
	}
	return out
}

// Pairs returns copies of the check list's pairs, in decreasing priority
// order.
func (c *Checker) Pairs() []Pair {
	out := make([]Pair, 0, len(c.cl.pairs))
	for _, p := range c.cl.pairs {
		out = append(out, *p)
	}
	return out
}

// Next returns the packets to send now, and when to call Next again (the
// zero Time when nothing is scheduled: only a packet given to Handle can
// then create work). It sends queued responses, retransmits due checks
// and fails timed-out ones (RFC 8489, Section 6.2.1, with the RTO of RFC
// 8445, Section 14.3), makes the nomination decisions, and starts at most
// one new check per Ta: the head of the triggered-check queue, else the
// next ordinary check (RFC 8445, Section 6.1.4.2).
func (c *Checker) Next(now time.Time) (out []Outgoing, next time.Time) {
	out, c.pending = c.pending, nil
	if c.cfg.Lite {
		c.updateState()
		return out, time.Time{} // answers only: nothing is ever scheduled
	}
	out = c.retransmit(now, out)
	if c.state != StateFailed {
		c.recheck(now)
		c.nominate(now)
		if !now.Before(c.nextCheck) {
			q, ok := c.pickCheck()
			if ok {
				out = append(out, c.send(q, now))
				c.nextCheck = now.Add(c.cfg.Ta)
			}
			c.idle = !ok
		}
		c.updateState()
	}
	return out, c.wakeup(now)
}

// retransmit resends due checks and times out finished ones.
func (c *Checker) retransmit(now time.Time, out []Outgoing) []Outgoing {
	keep := c.txs[:0]
	for _, t := range c.txs {
		if now.Before(t.next) {
			keep = append(keep, t)
			continue
		}
		if t.final {
			c.timeout(t)
			c.idle = false
			continue
		}
		t.attempt++
		out = append(out, Outgoing{From: t.from, To: t.to, Packet: slices.Clone(t.packet)})
		wait, last := t.rt.Wait(t.attempt)
		t.next, t.final = t.next.Add(wait), last
		keep = append(keep, t)
	}
	clear(c.txs[len(keep):])
	c.txs = keep
	return out
}

// timeout ends a transaction that got no answer: its pair fails, RFC 8445,
// Section 7.2.5.4, unless the transaction was cancelled.
func (c *Checker) timeout(t *transaction) {
	pi := c.info[t.pair]
	if pi.tx != t.id {
		return
	}
	pi.inFlight = false
	if t.cancelled {
		return
	}
	if t.nominate && !c.nominationFailed(t.pair, true) {
		return
	}
	if t.pair.State == PairInProgress {
		t.pair.State = PairFailed
	}
}

// pickCheck returns the next check to start: the triggered-check queue
// first, then an ordinary check while ordinary checks are still useful.
func (c *Checker) pickCheck() (queued, bool) {
	for len(c.triggered) > 0 {
		q := c.triggered[0]
		c.triggered = c.triggered[1:]
		if q.nominate || q.pair.State != PairSucceeded {
			return q, true
		}
	}
	if c.nom.selected != nil && !isRelayed(c.nom.selected) && !c.needBackup() {
		return queued{}, false // RFC 8445, Section 8.3: checks done, and a backup found
	}
	if p := c.cl.NextOrdinary(); p != nil {
		c.dequeue(p)
		return queued{pair: p}, true
	}
	return queued{}, false
}

// send starts a check on q.pair. RFC 8445, Sections 7.1 and 7.2.4.
func (c *Checker) send(q queued, now time.Time) Outgoing {
	p := q.pair
	if p.State != PairSucceeded {
		p.State = PairInProgress
	}
	pi := c.info[p]
	if pi.inFlight {
		c.cancel(pi.tx)
	}
	req := checkRequest{
		id:           stun.NewTransactionID(),
		username:     c.cfg.RemoteUfrag + ":" + c.cfg.LocalUfrag,
		priority:     PeerReflexivePriority(&p.Local),
		controlling:  c.cl.Controlling(),
		tieBreaker:   c.tieBreaker,
		useCandidate: q.nominate,
		key:          c.remoteKey,
	}
	pkt := appendRequest(make([]byte, 0, 128), &req)
	t := &transaction{
		id: req.id, pair: p, from: p.Local.BaseAddr(), to: p.Remote.Addr, packet: pkt,
		priority: req.priority, controlling: req.controlling, nominate: q.nominate,
		rt: stunclient.Retransmit{RTO: c.rto(), Rc: c.cfg.Rc, Rm: c.cfg.Rm},
	}
	wait, last := t.rt.Wait(0)
	t.start, t.next, t.final = now, now.Add(wait), last
	c.txs = append(c.txs, t)
	pi.tx, pi.inFlight = t.id, true
	return Outgoing{From: t.from, To: t.to, Packet: slices.Clone(pkt)}
}

// rto is the RTO of a new check, RFC 8445, Section 14.3:
// MAX(500ms, Ta*(Num-Waiting + Num-In-Progress)).
func (c *Checker) rto() time.Duration {
	n := 0
	for _, p := range c.cl.pairs {
		if p.State == PairWaiting || p.State == PairInProgress {
			n++
		}
	}
	return max(minCheckRTO, c.cfg.Ta*time.Duration(n))
}

// cancel stops retransmitting transaction id and forgets its failure; a
// response still counts. RFC 8445, Section 7.3.1.4.
func (c *Checker) cancel(id stun.TransactionID) {
	for _, t := range c.txs {
		if t.id == id && !t.cancelled {
			t.cancelled = true
			t.next, t.final = t.start.Add(t.rt.Total()), true
		}
	}
}

// findTx returns the live transaction with this ID, or nil.
func (c *Checker) findTx(id stun.TransactionID) *transaction {
	for _, t := range c.txs {
		if t.id == id {
			return t
		}
	}
	return nil
}

// removeTx forgets t.
func (c *Checker) removeTx(t *transaction) {
	if i := slices.Index(c.txs, t); i >= 0 {
		c.txs = slices.Delete(c.txs, i, i+1)
	}
	if pi := c.info[t.pair]; pi.tx == t.id {
		pi.inFlight = false
	}
}

// enqueue adds a triggered check for p (RFC 8445, Section 7.3.1.4), once.
func (c *Checker) enqueue(p *Pair, nominate bool) {
	for i := range c.triggered {
		if c.triggered[i].pair == p {
			c.triggered[i].nominate = c.triggered[i].nominate || nominate
			return
		}
	}
	q := queued{pair: p, nominate: nominate}
	if nominate {
		c.triggered = slices.Insert(c.triggered, 0, q)
		return
	}
	c.triggered = append(c.triggered, q)
}

// updateState moves to Failed when every pair failed and nothing can
// succeed any more.
func (c *Checker) updateState() {
	switch {
	case c.nom.selected != nil:
		c.state = StateConnected
	case c.cfg.Lite: // waits for the full agent's nomination
	case !c.remoteDone || len(c.cl.pairs) == 0 || len(c.nom.valid) > 0 || len(c.triggered) > 0:
	default:
		for _, t := range c.txs {
			if !t.cancelled {
				return
			}
		}
		for _, p := range c.cl.pairs {
			if p.State != PairFailed {
				return
			}
		}
		c.state = StateFailed
	}
}

// wakeup returns when Next must run again.
func (c *Checker) wakeup(now time.Time) time.Time {
	var next time.Time
	at := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, t := range c.txs {
		at(t.next)
	}
	if c.state == StateFailed {
		return next
	}
	if !c.idle && c.hasCheckWork() {
		at(maxTime(c.nextCheck, now))
	}
	if t, ok := c.relayDeadline(); ok {
		at(maxTime(t, now))
	}
	if !c.nom.recheckAt.IsZero() {
		at(c.nom.recheckAt)
	}
	return next
}

// hasCheckWork reports whether a new check could start.
func (c *Checker) hasCheckWork() bool {
	if len(c.triggered) > 0 {
		return true
	}
	if c.nom.selected != nil && !isRelayed(c.nom.selected) && !c.needBackup() {
		return false
	}
	for _, p := range c.cl.pairs {
		if p.State == PairWaiting || p.State == PairFrozen {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// setControlling switches the role and recomputes every pair priority.
// RFC 8445, Section 7.3.1.1 and 7.2.5.1.
func (c *Checker) setControlling(controlling bool) {
	c.cl.SetControlling(controlling)
	for _, p := range c.nom.valid {
		p.computePriority(controlling)
	}
	c.nom.sortValid()
	c.nom.nominating = nil
	c.nom.relaySince = time.Time{}
}

// localBase returns the local candidate that is the base at addr: a host
// or relayed candidate with that address, else any with that base.
func (c *Checker) localBase(addr netip.AddrPort) *Candidate {
	var any *Candidate
	for i := range c.locals {
		l := &c.locals[i]
		if l.Addr == addr && (l.Type == TypeHost || l.Type == TypeRelay) {
			return l
		}
		if any == nil && l.BaseAddr() == addr {
			any = l
		}
	}
	return any
}

// remoteAt returns the remote candidate at addr for a component, or nil.
func (c *Checker) remoteAt(addr netip.AddrPort, component uint16) *Candidate {
	for i := range c.remotes {
		r := &c.remotes[i]
		if r.Addr == addr && r.Component == component {
			return r
		}
	}
	return nil
}

// newPair adds a pair learned from a check or a trickled candidate to the
// check list, or returns nil when the list is at its limit.
func (c *Checker) newPair(local, remote *Candidate) *Pair {
	if len(c.cl.pairs) >= c.limit {
		return nil
	}
	p := &Pair{Local: *local, Remote: *remote, State: PairFrozen}
	c.cl.add(p)
	c.info[p] = &pairInfo{}
	return p
}

// AddRemoteCandidate adds a candidate the peer trickled after the checks
// began (RFC 8838, Section 11.4): it is paired with every local candidate
// (RFC 8445, Section 6.1.2.2) and each new pair is Waiting, unless a pair
// of its foundation is already Waiting or In-Progress, which leaves it
// Frozen (RFC 8838, Section 11.2, the rule of RFC 8445, Section 6.1.2.6).
// A candidate at the address of a peer-reflexive one replaces it in place:
// the pairs keep their state and take the signalled priority (RFC 8445,
// Section 7.3.1.3). Candidates that are not UDP, or already known, are
// ignored. It returns an error for a candidate without a usable address,
// or after RemoteCandidatesDone.
func (c *Checker) AddRemoteCandidate(r Candidate) error {
	if c.remoteDone {
		return errors.New("ice: remote candidate after end-of-candidates")
	}
	if r.Transport != TransportUDP || r.Host != "" {
		return nil // mDNS names are resolved by the driver, TCP is not checked
	}
	if !r.Addr.IsValid() || r.Addr.Port() == 0 || r.Component == 0 {
		return fmt.Errorf("ice: remote candidate %q has no usable address", r.String())
	}
	r.Addr = netx.Unmap(r.Addr)
	c.idle = false
	if old := c.remoteAt(r.Addr, r.Component); old != nil {
		if old.Type != TypePeerReflexive {
			return nil
		}
		*old = r
		for _, p := range c.cl.pairs {
			if p.Remote.Addr == r.Addr && p.Remote.Component == r.Component {
				p.Remote = r
				p.computePriority(c.cl.Controlling())
			}
		}
		c.cl.sort()
		return nil
	}
	c.remotes = append(c.remotes, r)
	remote := &c.remotes[len(c.remotes)-1]
	for i := range c.locals {
		l := &c.locals[i]
		if l.Type == TypeServerReflexive || !canPair(l, remote) {
			continue // a server-reflexive local pairs through its base, Section 6.1.2.4
		}
		if c.cl.Find(l.BaseAddr(), remote.Addr, TransportUDP) != nil {
			continue
		}
		p := c.newPair(l, remote)
		if p == nil {
			break
		}
		p.State = PairWaiting
		f := p.Foundation()
		for _, q := range c.cl.pairs {
			if q != p && q.Foundation() == f && (q.State == PairWaiting || q.State == PairInProgress) {
				p.State = PairFrozen
				break
			}
		}
	}
	return nil
}

// RemoteCandidatesDone records the peer's end-of-candidates (RFC 8838,
// Section 8.2): from now on, when every pair has failed, the checks have
// failed. Without RemoteTrickle the candidates given to NewChecker were
// already complete.
func (c *Checker) RemoteCandidatesDone() {
	c.remoteDone = true
	c.idle = false
}

// prflxFoundation returns a foundation for a peer-reflexive remote
// candidate that no other remote candidate has. RFC 8445, Section 7.3.1.3.
func (c *Checker) prflxFoundation() string {
	for {
		c.nprflx++
		f := "prflx" + strconv.Itoa(c.nprflx)
		if !slices.ContainsFunc(c.remotes, func(r Candidate) bool { return r.Foundation == f }) {
			return f
		}
	}
}
