package ice

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// stateLog collects the states an OnStateChange callback saw.
type stateLog struct {
	mu     sync.Mutex
	states []ConnectionState
	closed chan struct{}
}

func newStateLog() *stateLog { return &stateLog{closed: make(chan struct{})} }

func (l *stateLog) record(s ConnectionState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states = append(l.states, s)
	if s == ConnectionClosed {
		close(l.closed)
	}
}

func (l *stateLog) get() []ConnectionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.states)
}

// echo checks that data written on one Conn arrives on the other.
func echo(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := to.Read(buf)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
	}
}

// TestAgentRemoteTrickle: both agents start with no remote candidate and
// trickle them one by one after Dial and Accept began, then signal
// end-of-candidates.
func TestAgentRemoteTrickle(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	mk := func(l *stateLog) *Agent {
		a, err := NewAgent(AgentConfig{Gather: loopbackOnly(), RemoteTrickle: true, OnStateChange: l.record})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	la, lb := newStateLog(), newStateLog()
	a, b := mk(la), mk(lb)
	defer a.Close()
	defer b.Close()
	if err := (&Agent{}).AddRemoteCandidate(Candidate{}); err == nil {
		t.Error("AddRemoteCandidate without RemoteTrickle was accepted")
	}
	candsA, err := a.Gather(ctx)
	if err != nil {
		t.Fatal(err)
	}
	candsB, err := b.Gather(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ua, pa := a.LocalCredentials()
	ub, pb := b.LocalCredentials()
	var wg sync.WaitGroup
	var ca, cb net.Conn
	var errA, errB error
	wg.Go(func() { ca, errA = a.Dial(ctx, ub, pb, nil) })
	wg.Go(func() { cb, errB = b.Accept(ctx, ua, pa, nil) })
	for _, c := range candsB {
		if err := a.AddRemoteCandidate(c); err != nil {
			t.Fatal(err)
		}
	}
	a.RemoteCandidatesDone()
	for _, c := range candsA {
		if err := b.AddRemoteCandidate(c); err != nil {
			t.Fatal(err)
		}
	}
	b.RemoteCandidatesDone()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Dial: %v, Accept: %v", errA, errB)
	}
	echo(t, ca, cb, "hello")
	echo(t, cb, ca, "hello back")
	if err := a.AddRemoteCandidate(candsB[0]); err == nil {
		t.Error("a candidate after end-of-candidates was accepted")
	}
	if a.State() != ConnectionConnected {
		t.Errorf("state %v, want connected", a.State())
	}
	a.Close()
	b.Close()
	for _, l := range []*stateLog{la, lb} {
		<-l.closed
		want := []ConnectionState{ConnectionChecking, ConnectionConnected, ConnectionClosed}
		if got := l.get(); !slices.Equal(got, want) {
			t.Errorf("states %v, want %v", got, want)
		}
	}
	checkGoroutines(t, base)
}

// TestAgentTrickleEndOfCandidatesFails: with RemoteTrickle, Dial fails
// after end-of-candidates when every pair failed, and the state goes to
// failed.
func TestAgentTrickleEndOfCandidatesFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	l := newStateLog()
	a, err := NewAgent(AgentConfig{Gather: loopbackOnly(), RemoteTrickle: true, OnStateChange: l.record, Rc: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A peer that never answers: a socket that reads nothing.
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	c := Candidate{Foundation: "x", Component: 1, Transport: TransportUDP, Priority: 1, Type: TypeHost,
		Addr: dead.LocalAddr().(*net.UDPAddr).AddrPort()}
	done := make(chan error, 1)
	go func() {
		_, err := a.Dial(ctx, "peer", "peer-password-0123456789", []Candidate{c})
		done <- err
	}()
	// The Checker-level test (TestCheckerTrickleNoEarlyFailure) shows on
	// an injected clock that failure waits for end-of-candidates; here the
	// end comes at once and the only pair fails within Rc=2 tries.
	a.RemoteCandidatesDone()
	if err := <-done; !errors.Is(err, ErrFailed) {
		t.Fatalf("Dial: %v, want ErrFailed", err)
	}
	if a.State() != ConnectionFailed {
		t.Errorf("state %v, want failed", a.State())
	}
}

// TestAgentRestart: an ICE restart with new credentials on both sides
// selects a pair again, the Conns carry data before, during and after it,
// and the agents use the new credentials.
func TestAgentRestart(t *testing.T) {
	base := runtime.NumGoroutine()
	la, lb := newStateLog(), newStateLog()
	a, b, ca, cb := connectPair(t,
		AgentConfig{Gather: loopbackOnly(), OnStateChange: la.record},
		AgentConfig{Gather: loopbackOnly(), OnStateChange: lb.record})
	echo(t, ca, cb, "before")
	oldA, _ := a.LocalCredentials()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.Restart(ctx, "x", "y", nil); err == nil {
		t.Error("Restart without RestartCredentials was accepted")
	}
	// The offer: A's new credentials go to B, who restarts at once, so
	// that B's checks with A's new ufrag reach A before A restarts.
	ua, pa := a.RestartCredentials()
	if u2, _ := a.RestartCredentials(); u2 != ua {
		t.Error("RestartCredentials changed before Restart")
	}
	ub, pb := b.RestartCredentials()
	candsA, _ := a.Gather(ctx)
	candsB, _ := b.Gather(ctx)
	errB := make(chan error, 1)
	go func() { errB <- b.Restart(ctx, ua, pa, candsA) }()
	echo(t, cb, ca, "during")
	if err := a.Restart(ctx, ub, pb, candsB); err != nil {
		t.Fatalf("A restart: %v", err)
	}
	if err := <-errB; err != nil {
		t.Fatalf("B restart: %v", err)
	}
	if u, _ := a.LocalCredentials(); u != ua || u == oldA {
		t.Errorf("A's ufrag after restart %q, want the new %q", u, ua)
	}
	echo(t, ca, cb, "after")
	echo(t, cb, ca, "after, back")
	a.Close()
	b.Close()
	<-la.closed
	want := []ConnectionState{ConnectionChecking, ConnectionConnected, ConnectionChecking, ConnectionConnected, ConnectionClosed}
	if got := la.get(); !slices.Equal(got, want) {
		t.Errorf("A's states %v, want %v", got, want)
	}
	checkGoroutines(t, base)
}

// TestAgentRestartNotConnected: Restart before a connection is refused.
func TestAgentRestartNotConnected(t *testing.T) {
	a, err := NewAgent(AgentConfig{Gather: loopbackOnly()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.RestartCredentials()
	if err := a.Restart(t.Context(), "abcd", "abcdefghijklmnopqrstuvwxyz", nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Restart: %v, want ErrNotConnected", err)
	}
}

// TestAgentRestartGivenUp: a restart the peer does not take part in,
// given up (ctx) or failed (every new pair timed out), leaves the old
// session running: consent on the old pair goes on, past the consent
// timeout, and the Conn keeps working.
func TestAgentRestartGivenUp(t *testing.T) {
	for _, tc := range []string{"cancelled", "failed"} {
		t.Run(tc, func(t *testing.T) {
			cfg := func() AgentConfig {
				// The consent timeout leaves room for a loaded race
				// build: a response late by 300 ms failed it 1 in 6.
				return AgentConfig{Gather: loopbackOnly(), ConsentInterval: 20 * time.Millisecond, ConsentTimeout: 2 * time.Second}
			}
			cfgA := cfg()
			timeout, wantErr := 500*time.Millisecond, error(context.DeadlineExceeded)
			if tc == "failed" {
				// checks time out after 2 sends, 1 s in all
				cfgA.Rc, cfgA.Rm = 2, 1
				timeout, wantErr = 10*time.Second, ErrFailed
			}
			a, _, ca, cb := connectPair(t, cfgA, cfg())
			// a peer that never answers the new checks
			dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer dead.Close()
			remotes := []Candidate{{Foundation: "d", Component: 1, Transport: TransportUDP, Priority: 1, Type: TypeHost,
				Addr: dead.LocalAddr().(*net.UDPAddr).AddrPort()}}
			a.RestartCredentials()
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			var fresh []Candidate
			if tc == "cancelled" { // over new sockets, closed when it is given up
				if fresh, err = a.Regather(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Restart(ctx, "nope", "not-the-peers-password-0", remotes); !errors.Is(err, wantErr) {
				t.Fatalf("Restart: %v, want %v", err, wantErr)
			}
			for _, c := range fresh {
				if a.socks.forBase(c.Addr) != nil {
					t.Errorf("the regathered socket %v outlived the restart given up", c.Addr)
				}
			}
			before := a.Stats().ConsentResponses
			deadline := time.Now().Add(10 * time.Second)
			for a.Stats().ConsentResponses < before+20 {
				if time.Now().After(deadline) {
					t.Fatalf("consent stopped after the restart: %+v", a.Stats())
				}
				time.Sleep(10 * time.Millisecond) // bounded poll of a counter
			}
			if a.State() != ConnectionConnected {
				t.Errorf("state %v, want connected", a.State())
			}
			echo(t, ca, cb, "still here")
			echo(t, cb, ca, "still here too")
			// The old session is back, and another restart may start.
			a.RestartCredentials()
			ctx2, cancel2 := context.WithTimeout(t.Context(), 10*time.Millisecond)
			defer cancel2()
			if err := a.Restart(ctx2, "nope", "not-the-peers-password-0", remotes); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("second restart: %v, want it to start and time out", err)
			}
		})
	}
}

// TestAgentRestartRegather: an ICE restart over newly gathered candidates
// (after a network change, say), host or relayed, moves the connection to
// a new socket or allocation, the Conn carries data across it, and the old
// one is closed afterwards.
func TestAgentRestartRegather(t *testing.T) {
	udp, _, _, _ := turnServer(t)
	for _, relayed := range []bool{false, true} {
		t.Run(map[bool]string{false: "host", true: "relay"}[relayed], func(t *testing.T) {
			base := runtime.NumGoroutine()
			gA := loopbackOnly()
			if relayed {
				gA.RelayOnly = true
				gA.TURNServers = []TURNServer{{Addr: udp, Username: "u", Password: "p"}}
			}
			a, b, ca, cb := connectPair(t, AgentConfig{Gather: gA}, AgentConfig{Gather: loopbackOnly()})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			old, _ := a.SelectedPair()
			candsB, err := b.Regather(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Regather(ctx); err == nil {
				t.Error("a second Regather before Restart was accepted")
			}
			ua, pa := a.RestartCredentials()
			fresh, err := a.Regather(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(fresh) != 1 || fresh[0].Addr == old.Local.Addr {
				t.Fatalf("regathered %v, want one candidate on a new address (old %v)", fresh, old.Local.Addr)
			}
			ub, pb := b.RestartCredentials()
			errB := make(chan error, 1)
			go func() { errB <- b.Restart(ctx, ua, pa, fresh) }()
			if err := a.Restart(ctx, ub, pb, candsB); err != nil {
				t.Fatalf("A restart: %v", err)
			}
			if err := <-errB; err != nil {
				t.Fatalf("B restart: %v", err)
			}
			now, _ := a.SelectedPair()
			if now.Local.BaseAddr() != fresh[0].Addr {
				t.Fatalf("A selected %v, want its new base %v", now.String(), fresh[0].Addr)
			}
			echo(t, ca, cb, "over the new sockets")
			echo(t, cb, ca, "and back")
			if a.socks.forBase(old.Local.BaseAddr()) != nil {
				t.Errorf("the old base %v is still open", old.Local.BaseAddr())
			}
			if g, _ := a.Gather(ctx); len(g) != 1 || g[0].Addr != fresh[0].Addr {
				t.Errorf("Gather after the restart: %v, want the new candidates", g)
			}
			a.Close()
			b.Close()
			checkGoroutines(t, base)
		})
	}
}
