package ice

import (
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// TestCheckerRemoteTrickle: A starts with no remote candidate and B's
// candidates arrive later (RFC 8838): the Checker stays Checking, pairs the
// trickled candidates, and connects over them.
func TestCheckerRemoteTrickle(t *testing.T) {
	ca, cb := pairCfg(true)
	ca.RemoteTrickle = true
	la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
	cb.RemoteTrickle = true
	a := mustChecker(t, []Candidate{la}, nil, ca)
	b := mustChecker(t, []Candidate{lb}, nil, cb)
	h := newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
	h.run(time.Second, func() bool { return false })
	if a.State() != StateChecking || b.State() != StateChecking || len(h.log) != 0 {
		t.Fatalf("A %v, B %v, %d packets before any remote candidate, want both Checking and silent",
			a.State(), b.State(), len(h.log))
	}
	// A's candidates reach B: B checks A, A learns B as peer-reflexive,
	// then B's signalled candidate reaches A and replaces it.
	if err := b.AddRemoteCandidate(remote(la)[0]); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if err := a.AddRemoteCandidate(remote(lb)[0]); err != nil {
		t.Fatal(err)
	}
	if !h.run(2*time.Second, h.connected) {
		t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
	}
	p, _ := a.Selected()
	if p.Remote.Type != TypeHost || p.Remote.Addr != lb.Addr {
		t.Errorf("A selected %v, want B's host candidate as signalled", p.String())
	}
	// A duplicate is ignored; after end-of-candidates more are refused.
	n := len(a.Pairs())
	if err := a.AddRemoteCandidate(remote(lb)[0]); err != nil || len(a.Pairs()) != n {
		t.Errorf("duplicate: %v, %d pairs, want nil and %d", err, len(a.Pairs()), n)
	}
	a.RemoteCandidatesDone()
	if err := a.AddRemoteCandidate(cand("b9", TypeHost, "10.0.0.9:9", 1)); err == nil {
		t.Error("a candidate after end-of-candidates was accepted")
	}
}

// TestCheckerTrickleNoEarlyFailure: with RemoteTrickle, every pair failing
// is not failure until end-of-candidates; a good candidate trickled late
// still connects, and after RemoteCandidatesDone failure is declared.
func TestCheckerTrickleNoEarlyFailure(t *testing.T) {
	ca, cb := pairCfg(true)
	ca.RemoteTrickle = true
	la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
	dead := cand("bx", TypeHost, "10.0.0.99:9999", 65000)
	a := mustChecker(t, []Candidate{la}, []Candidate{dead}, ca)
	b := mustChecker(t, []Candidate{lb}, nil, cb) // B learns A from its checks
	h := newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
	h.run(time.Minute, func() bool { return a.Pairs()[0].State == PairFailed })
	h.run(h.now.Sub(epoch)+5*time.Second, func() bool { return false })
	if a.State() != StateChecking {
		t.Fatalf("A is %v with its only pair failed before end-of-candidates, want Checking", a.State())
	}
	if err := a.AddRemoteCandidate(remote(lb)[0]); err != nil {
		t.Fatal(err)
	}
	if !h.run(h.now.Sub(epoch)+5*time.Second, h.connected) {
		t.Fatalf("not connected after the late candidate: A %v, B %v", a.State(), b.State())
	}

	// Without the good candidate, end-of-candidates ends it.
	c := mustChecker(t, []Candidate{la}, []Candidate{dead}, ca)
	h2 := newHarness(t, c, mustChecker(t, []Candidate{lb}, nil, cb), []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
	h2.run(time.Minute, func() bool { return c.Pairs()[0].State == PairFailed })
	if c.State() != StateChecking {
		t.Fatalf("failed before end-of-candidates: %v", c.State())
	}
	c.RemoteCandidatesDone()
	if !h2.run(h2.now.Sub(epoch)+time.Second, func() bool { return c.State() == StateFailed }) {
		t.Fatalf("state %v after end-of-candidates with every pair failed, want Failed", c.State())
	}
}

// TestCheckerLearnedPairLimit: peer-reflexive candidates learned from
// checks (an authenticated peer behind many addresses, or a misbehaving
// one) cannot grow the check list past twice MaxPairs.
func TestCheckerLearnedPairLimit(t *testing.T) {
	ca, cb := pairCfg(false)
	ca.MaxPairs = 3
	la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
	a := mustChecker(t, []Candidate{la}, remote(lb), ca)
	key, err := stun.ShortTermKey(cb.RemotePwd)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		req := checkRequest{id: stun.NewTransactionID(), username: ca.LocalUfrag + ":" + ca.RemoteUfrag,
			priority: 1000, controlling: true, tieBreaker: 99, key: key}
		from := netip.AddrPortFrom(lb.Addr.Addr(), uint16(3000+i))
		if err := a.Handle(appendRequest(nil, &req), la.Addr, from, epoch); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	out, _ := a.Next(epoch)
	if len(out) < 50 {
		t.Errorf("%d packets out, want the 50 answers at least", len(out))
	}
	if n := len(a.Pairs()); n > 6 {
		t.Errorf("%d pairs after 50 learned addresses, want at most 2*MaxPairs = 6", n)
	}
	if n := len(a.remotes); n > 6 {
		t.Errorf("%d remote candidates, want at most 6", n)
	}
}

// TestCheckerValidPairTakesKnownSrflx: behind an endpoint-independent NAT,
// the mapped address of A's check is A's own server-reflexive candidate,
// which the check list pruned for its base: the valid pair takes that
// candidate (RFC 8445, Section 7.2.5.3.1), not a new peer-reflexive one.
func TestCheckerValidPairTakesKnownSrflx(t *testing.T) {
	ca, cb := pairCfg(true)
	la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
	srflx := cand("a2", TypeServerReflexive, "203.0.113.1:40000", 65535)
	srflx.Base, srflx.Related = la.Addr, la.Addr
	a := mustChecker(t, []Candidate{la, srflx}, remote(lb), ca)
	b := mustChecker(t, []Candidate{lb}, remote(la, srflx), cb)
	h := newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
	h.nats[0] = newNAT("203.0.113.1", false) // maps A's base to 203.0.113.1:40000
	h.drop = func(_, to netip.AddrPort) bool { return to == la.Addr }
	if !h.run(5*time.Second, h.connected) {
		t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
	}
	p, _ := a.Selected()
	if p.Local.Type != TypeServerReflexive || p.Local.Addr != srflx.Addr {
		t.Fatalf("A selected %v, want its srflx candidate %v as the local one", p.String(), srflx.Addr)
	}
}

// FuzzAddRemoteCandidate: any candidate the peer can signal (RFC 8839
// grammar) may be trickled into a running Checker without a panic, and
// the Checker keeps its limits.
func FuzzAddRemoteCandidate(f *testing.F) {
	f.Add("candidate:1 1 UDP 2130706431 10.0.0.2 2000 typ host")
	f.Add("candidate:2 1 udp 1694498815 203.0.113.5 40000 typ srflx raddr 10.0.0.2 rport 2000")
	f.Add("candidate:3 1 udp 16777215 ::1 3478 typ relay raddr :: rport 0")
	f.Add("candidate:4 1 tcp 1 10.0.0.3 9 typ host tcptype active")
	f.Add("candidate:5 1 udp 1 abc.local 5000 typ host")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCandidate(line)
		if err != nil {
			return
		}
		ca, _ := pairCfg(true)
		ca.RemoteTrickle, ca.MaxPairs = true, 2
		a := mustChecker(t, []Candidate{host("a1", "10.0.0.1:1000", 65535), host("a2", "[::1]:1000", 65535)}, nil, ca)
		for i := range 5 {
			c.Addr = netip.AddrPortFrom(c.Addr.Addr(), c.Addr.Port()+uint16(i))
			_ = a.AddRemoteCandidate(c)
			a.Next(epoch.Add(time.Duration(i) * time.Second))
		}
		if n := len(a.Pairs()); n > 4 {
			t.Fatalf("%d pairs, past twice MaxPairs", n)
		}
		a.RemoteCandidatesDone()
		a.Next(epoch.Add(time.Minute))
	})
}
