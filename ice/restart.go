package ice

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"

	"github.com/icebreaker-net/icebreaker/stun"
)

// ErrNotConnected is returned by Restart before a Dial or Accept has
// connected.
var ErrNotConnected = errors.New("ice: not connected: Dial or Accept first")

// State returns the connection state.
func (a *Agent) State() ConnectionState { return a.state.get() }

// trickleQueue holds the remote candidates trickled through
// AddRemoteCandidate until the loop takes them. q and eoc are guarded by
// Agent.mu.
type trickleQueue struct {
	q    []Candidate   // not taken yet
	eoc  bool          // the peer's end-of-candidates
	kick chan struct{} // cap 1: q or eoc changed
}

// AddRemoteCandidate adds a candidate that the peer trickled (RFC 8838,
// Section 11.4) to the running checks, or to the next Dial, Accept or
// Restart when none runs. It needs AgentConfig.RemoteTrickle, and the
// candidate must come before RemoteCandidatesDone. Relays get a
// permission for its address (RFC 8656, Section 9) when the checks take
// it. Candidates that are not UDP, or with an mDNS name, are ignored. It
// does not block.
func (a *Agent) AddRemoteCandidate(c Candidate) error {
	if !a.cfg.RemoteTrickle {
		return errors.New("ice: AddRemoteCandidate needs AgentConfig.RemoteTrickle")
	}
	if c.Transport == TransportUDP && c.Host == "" && (!c.Addr.IsValid() || c.Addr.Port() == 0) {
		return errors.New("ice: remote candidate without an address")
	}
	if a.socks.isClosed() {
		return a.opErr("add candidate", nil, net.ErrClosed)
	}
	a.mu.Lock()
	switch {
	case a.trickled.eoc:
		a.mu.Unlock()
		return errors.New("ice: remote candidate after end-of-candidates")
	}
	a.trickled.q = append(a.trickled.q, c)
	a.mu.Unlock()
	a.kick()
	return nil
}

// RemoteCandidatesDone records the peer's end-of-candidates (RFC 8838,
// Section 8.2): once every pair has failed, Dial or Accept returns
// ErrFailed. It does not block.
func (a *Agent) RemoteCandidatesDone() {
	a.mu.Lock()
	a.trickled.eoc = true
	a.mu.Unlock()
	a.kick()
}

func (a *Agent) kick() {
	select {
	case a.trickled.kick <- struct{}{}:
	default:
	}
}

// takeRemotes moves the trickled candidates to the session's Checker and
// asks the relays for their permissions. The loop calls it.
func (a *Agent) takeRemotes(s *session) {
	a.mu.Lock()
	q, eoc := a.trickled.q, a.trickled.eoc && !s.checker.remoteDone
	a.trickled.q = nil
	a.mu.Unlock()
	if len(q) > 0 {
		a.permit(q)
	}
	for _, c := range q {
		if err := s.checker.AddRemoteCandidate(c); err != nil {
			a.log.Debug("ice: trickled candidate refused", "candidate", c.String(), "err", err)
			a.counters.malformed.Add(1)
		}
	}
	if eoc {
		s.checker.RemoteCandidatesDone()
	}
}

// RestartCredentials picks the new local credentials of an ICE restart
// (RFC 8445, Section 9) and returns them, to send to the peer with the
// candidates. Until Restart runs, the current session goes on, and checks
// from the peer that already use the new credentials are kept for the
// restart. Calling it again before Restart returns the same credentials.
func (a *Agent) RestartCredentials() (ufrag, pwd string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.creds.nextUfrag == "" {
		a.creds.nextUfrag, a.creds.nextPwd = randomIceChars(UfragLen), randomIceChars(PwdLen)
	}
	return a.creds.nextUfrag, a.creds.nextPwd
}

// Regather gathers a new set of candidates for the next Restart, on new
// sockets and allocations (after a network change, say), emitting them
// through GatherConfig.Trickle like Gather, and returns them to send to
// the peer with the RestartCredentials. The current session goes on over
// the old sockets; when the restart selects a pair, the old sockets and
// allocations are closed, and when it is given up or fails, the new ones.
// Call it once per restart, after Gather.
func (a *Agent) Regather(ctx context.Context) ([]Candidate, error) {
	if a.socks.isClosed() {
		return nil, a.opErr("regather", nil, net.ErrClosed)
	}
	a.mu.Lock()
	switch {
	case a.gathering.cands == nil:
		a.mu.Unlock()
		return nil, errors.New("ice: Regather before Gather")
	case a.gathering.next != nil || a.sess.restarting:
		a.mu.Unlock()
		return nil, errors.New("ice: already regathered for the next restart")
	}
	a.gathering.gen++
	gen := a.gathering.gen
	a.mu.Unlock()
	cands, err := a.gather(ctx, gen)
	if err != nil {
		a.retire(func(s *sock) bool { return s.gen == gen })
		return nil, err
	}
	a.mu.Lock()
	a.gathering.next = cands
	a.mu.Unlock()
	return slices.Clone(cands), nil
}

// retire closes and forgets the sockets and allocations gone reports true
// for; their goroutines end with them.
func (a *Agent) retire(gone func(*sock) bool) {
	for _, s := range a.socks.remove(gone) {
		s.close()
	}
}

// Restart runs an ICE restart (RFC 8445, Section 9): new checks with the
// credentials from RestartCredentials against the peer's new credentials
// and candidates, over the candidates of Regather if it was called, else
// those gathered at first, in the role of the first session. The Conn
// stays usable: it keeps the selected pair, whose consent the old session
// keeps checking, until the new checks select one, then follows it. Restart returns once a pair is selected, or
// with ErrFailed when every new pair failed, or when ctx ends; in both
// cases the old session goes on with its pair.
func (a *Agent) Restart(ctx context.Context, remoteUfrag, remotePwd string, remotes []Candidate) error {
	if a.socks.isClosed() {
		return a.opErr("restart", nil, net.ErrClosed)
	}
	a.mu.Lock()
	ufrag, pwd, controlling := a.creds.nextUfrag, a.creds.nextPwd, a.sess.controlling
	switch {
	case !a.sess.connected:
		a.mu.Unlock()
		return ErrNotConnected
	case a.sess.restarting:
		a.mu.Unlock()
		return errors.New("ice: a restart is already running")
	case ufrag == "":
		a.mu.Unlock()
		return errors.New("ice: call RestartCredentials first and send them to the peer")
	}
	// This call is the one writer of restarting, until it returns.
	a.sess.restarting = true
	locals, fresh, gen := a.gathering.cands, a.gathering.next != nil, a.gathering.gen
	if fresh {
		locals = a.gathering.next
	}
	a.gathering.next = nil
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.sess.restarting = false
		a.mu.Unlock()
	}()
	undo := func() {
		if fresh {
			a.retire(func(s *sock) bool { return s.gen == gen })
		}
	}
	ch, err := a.newChecker(locals, remotes, controlling, ufrag, pwd, remoteUfrag, remotePwd)
	if err != nil {
		undo()
		return err
	}
	a.mu.Lock()
	a.creds = credentials{ufrag: ufrag, pwd: pwd}
	a.trickled.eoc = false
	a.mu.Unlock()
	a.permit(remotes)
	err = a.run(ctx, "restart", &session{checker: ch, result: make(chan error, 1), restart: true})
	if err != nil {
		undo()
		return err
	}
	if fresh {
		a.mu.Lock()
		a.gathering.cands = locals
		a.mu.Unlock()
		a.retire(func(s *sock) bool { return s.gen < gen })
	}
	p, _ := a.SelectedPair()
	a.log.Info("ice: restarted", "pair", p.String())
	return nil
}

// forRestart reports whether m is a check that uses the credentials picked
// for a restart that has not started here yet.
func (a *Agent) forRestart(m *stun.Message) bool {
	a.mu.Lock()
	next := a.creds.nextUfrag
	a.mu.Unlock()
	if next == "" {
		return false
	}
	return localUfrag(m) == next
}

// localUfrag returns the first part of a check's USERNAME, the ufrag of
// the agent it is addressed to (RFC 8445, Section 7.2.2), or "".
func localUfrag(m *stun.Message) string {
	u, err := m.Text(stun.AttrUsername)
	if err != nil {
		return ""
	}
	local, _, _ := strings.Cut(u, ":")
	return local
}
