package ice

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// twoHosts returns A (controlling unless told) and B with one host each.
func twoHosts(t testing.TB, controllingA bool) (*Checker, *Checker, *harness) {
	t.Helper()
	ca, cb := pairCfg(controllingA)
	la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
	a := mustChecker(t, []Candidate{la}, remote(lb), ca)
	b := mustChecker(t, []Candidate{lb}, remote(la), cb)
	return a, b, newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
}

func TestCheckRequestAttributes(t *testing.T) {
	a, _, _ := twoHosts(t, true)
	out, _ := a.Next(epoch)
	if len(out) != 1 {
		t.Fatalf("first Next sent %d packets, want 1", len(out))
	}
	o := out[0]
	if o.From != ap("10.0.0.1:1000") || o.To != ap("10.0.0.2:2000") {
		t.Fatalf("check %v -> %v", o.From, o.To)
	}
	var m stun.Message
	if err := m.Parse(o.Packet); err != nil {
		t.Fatal(err)
	}
	key, _ := stun.ShortTermKey("passwordB-0123456789ab")
	if err := m.CheckIntegrity(key); err != nil {
		t.Errorf("MESSAGE-INTEGRITY with the remote password: %v", err)
	}
	if err := m.CheckFingerprint(); err != nil {
		t.Errorf("FINGERPRINT: %v", err)
	}
	if u, _ := m.Username(); u != "ufB:ufA" {
		t.Errorf("USERNAME %q, want ufB:ufA", u)
	}
	v, _ := m.Get(stun.AttrPriority)
	if p, _ := stun.Uint32(v); p != Priority(TypePrefPeerReflexive, 65535, 1) {
		t.Errorf("PRIORITY %d, want the prflx priority %d", p, Priority(TypePrefPeerReflexive, 65535, 1))
	}
	v, _ = m.Get(stun.AttrICEControlling)
	if tb, err := stun.Uint64(v); err != nil || tb != 2 {
		t.Errorf("ICE-CONTROLLING %d, %v; want the tie-breaker 2", tb, err)
	}
	if m.Has(stun.AttrICEControlled) || m.Has(stun.AttrUseCandidate) {
		t.Error("ordinary check carries ICE-CONTROLLED or USE-CANDIDATE")
	}
}

func TestCheckerConnectHosts(t *testing.T) {
	a, b, h := twoHosts(t, true)
	if !h.run(time.Second, h.connected) {
		t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
	}
	for i, c := range h.agents {
		p, ok := c.Selected()
		if !ok || p.Local.Type != TypeHost || p.Remote.Type != TypeHost {
			t.Fatalf("agent %d selected %v, %v; want host/host", i, p.String(), ok)
		}
	}
	pa, _ := a.Selected()
	pb, _ := b.Selected()
	if pa.Local.Addr != pb.Remote.Addr || pa.Remote.Addr != pb.Local.Addr {
		t.Fatalf("agents selected different paths: %v / %v", pa.String(), pb.String())
	}
	// Without loss or latency, it takes one check and one nomination,
	// paced Ta apart.
	if got := h.now.Sub(epoch); got > DefaultTa {
		t.Errorf("connected after %v, want at most Ta", got)
	}
	nominations := 0
	for _, s := range h.log {
		if s.useCand {
			nominations++
			if s.agent != 0 {
				t.Errorf("controlled agent sent USE-CANDIDATE")
			}
		}
	}
	if nominations != 1 {
		t.Errorf("%d nominations, want 1", nominations)
	}
	// Connected agents stop sending new checks.
	h.run(3*time.Second, func() bool { return false })
	if n := len(h.requests(0)) + len(h.requests(1)); n > 4 {
		t.Errorf("%d checks after connecting, want the few before it", n)
	}
}

func TestCheckerPeerReflexive(t *testing.T) {
	for _, symmetric := range []bool{false, true} {
		name := map[bool]string{false: "eim", true: "symmetric"}[symmetric]
		t.Run(name, func(t *testing.T) {
			a, b, h := twoHosts(t, true)
			h.nats[0] = newNAT("203.0.113.1", symmetric)
			// A's private host address is unreachable from B.
			h.drop = func(_, to netip.AddrPort) bool { return to == ap("10.0.0.1:1000") }
			if !h.run(2*time.Second, h.connected) {
				t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
			}
			pb, _ := b.Selected()
			if pb.Remote.Type != TypePeerReflexive || pb.Remote.Addr.Addr() != netip.MustParseAddr("203.0.113.1") {
				t.Fatalf("B selected %v, want a prflx remote at the NAT", pb.String())
			}
			if pb.Remote.Priority != Priority(TypePrefPeerReflexive, 65535, 1) {
				t.Errorf("learned prflx priority %d, want the PRIORITY sent", pb.Remote.Priority)
			}
			pa, _ := a.Selected()
			if pa.Local.Type != TypePeerReflexive || pa.Local.Addr != pb.Remote.Addr || pa.Local.Base != ap("10.0.0.1:1000") {
				t.Fatalf("A selected %v (base %v), want a prflx local at %v based on its host", pa.String(), pa.Local.Base, pb.Remote.Addr)
			}
		})
	}
}

func TestCheckerRoleConflict(t *testing.T) {
	for _, controlling := range []bool{true, false} {
		name := map[bool]string{true: "both controlling", false: "both controlled"}[controlling]
		t.Run(name, func(t *testing.T) {
			a, b, h := twoHosts(t, true)
			ca, cb := pairCfg(true)
			ca.Controlling, cb.Controlling = controlling, controlling
			la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
			a = mustChecker(t, []Candidate{la}, remote(lb), ca)
			b = mustChecker(t, []Candidate{lb}, remote(la), cb)
			h.agents = [2]*Checker{a, b}
			if !h.run(2*time.Second, h.connected) {
				t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
			}
			// A has the larger tie-breaker: it ends controlling.
			if !a.Controlling() || b.Controlling() {
				t.Fatalf("roles A controlling=%v, B controlling=%v; want A only", a.Controlling(), b.Controlling())
			}
			saw487 := false
			for _, s := range h.log {
				saw487 = saw487 || s.errCode == stun.CodeRoleConflict
			}
			if !saw487 {
				t.Error("no 487 answer seen")
			}
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			if pa.Local.Addr != pb.Remote.Addr || pa.Remote.Addr != pb.Local.Addr {
				t.Fatalf("agents selected different paths: %v / %v", pa.String(), pb.String())
			}
		})
	}
}

// drive runs one agent alone, calling Next exactly when it asks, and
// returns what it sent with the times.
func drive(c *Checker, limit time.Duration) (sends []Outgoing, at []time.Duration, end time.Duration) {
	now := epoch
	for calls := 0; now.Sub(epoch) <= limit; calls++ {
		if calls > 10000 {
			panic("Checker.Next asks to run again without progress")
		}
		out, next := c.Next(now)
		for _, o := range out {
			sends = append(sends, o)
			at = append(at, now.Sub(epoch))
		}
		if next.IsZero() {
			break
		}
		now = next
	}
	return sends, at, now.Sub(epoch)
}

func TestCheckerTaPacing(t *testing.T) {
	for _, ta := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(ta.String(), func(t *testing.T) {
			ca, _ := pairCfg(true)
			ca.Ta = ta
			want := ta
			if want == 0 {
				want = DefaultTa
			}
			locals := []Candidate{host("a1", "10.0.0.1:1000", 65535), host("a2", "10.0.1.1:1000", 65534), host("a3", "10.0.2.1:1000", 65533)}
			remotes := []Candidate{cand("b1", TypeHost, "10.0.0.2:2000", 65535), cand("b2", TypeServerReflexive, "192.0.2.2:2000", 65535)}
			c := mustChecker(t, locals, remotes, ca)
			sends, at, _ := drive(c, 400*time.Millisecond)
			var firsts []time.Duration
			seen := map[stun.TransactionID]bool{}
			for i, o := range sends {
				var m stun.Message
				if err := m.Parse(o.Packet); err != nil {
					t.Fatal(err)
				}
				if !seen[m.TransactionID] {
					seen[m.TransactionID] = true
					firsts = append(firsts, at[i])
				}
			}
			if len(firsts) != 6 {
				t.Fatalf("%d checks started, want one per pair (6): %v", len(firsts), firsts)
			}
			for i, d := range firsts {
				if d != time.Duration(i)*want {
					t.Fatalf("check %d started at %v, want %v (every Ta): %v", i, d, time.Duration(i)*want, firsts)
				}
			}
		})
	}
}

func TestCheckerRetransmission(t *testing.T) {
	t.Run("one pair", func(t *testing.T) {
		ca, _ := pairCfg(true)
		ca.Rc, ca.Rm = 3, 2
		c := mustChecker(t, []Candidate{host("a1", "10.0.0.1:1000", 65535)}, []Candidate{cand("b1", TypeHost, "10.0.0.2:2000", 65535)}, ca)
		sends, at, end := drive(c, time.Minute)
		// RTO = MAX(500ms, Ta*1) = 500ms: sends at 0, 500, 1500 with the
		// same bytes, failure after Rm*RTO more.
		want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond}
		if len(at) != len(want) {
			t.Fatalf("sends at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] || string(sends[i].Packet) != string(sends[0].Packet) {
				t.Fatalf("sends at %v, want %v with identical bytes", at, want)
			}
		}
		if c.State() != StateFailed || end != 2500*time.Millisecond {
			t.Fatalf("state %v at %v, want Failed at 2.5s", c.State(), end)
		}
	})
	t.Run("RTO grows with the pairs", func(t *testing.T) {
		ca, _ := pairCfg(true)
		var locals, remotes []Candidate
		for i := range 4 {
			locals = append(locals, host("a"+string(rune('0'+i)), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 1000).String(), uint32(65535-i)))
		}
		for i := range 5 {
			remotes = append(remotes, cand("b"+string(rune('0'+i)), TypeHost, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 2}), 2000).String(), uint32(65535-i)))
		}
		c := mustChecker(t, locals, remotes, ca)
		sends, at, _ := drive(c, 1100*time.Millisecond)
		var m stun.Message
		if err := m.Parse(sends[0].Packet); err != nil {
			t.Fatal(err)
		}
		first := m.TransactionID
		// 20 pairs Waiting: RTO = Ta*20 = 1s, so the first check is
		// resent at 1s, not 500 ms.
		var resent []time.Duration
		for i, o := range sends[1:] {
			if err := m.Parse(o.Packet); err != nil {
				t.Fatal(err)
			}
			if m.TransactionID == first {
				resent = append(resent, at[i+1])
			}
		}
		if len(resent) != 1 || resent[0] != time.Second {
			t.Fatalf("first check resent at %v, want once at 1s", resent)
		}
	})
}

// A Frozen pair whose foundation is being checked waits for that check to
// end (RFC 8445, Section 6.1.4.2) without the Checker asking to run again
// and again meanwhile.
func TestCheckerFrozenUntilFoundationDone(t *testing.T) {
	ca, _ := pairCfg(true)
	ca.Rc, ca.Rm = 1, 1
	remotes := []Candidate{cand("b1", TypeHost, "10.0.0.2:2000", 65535), cand("b1", TypeHost, "10.0.0.2:2001", 65534)}
	c := mustChecker(t, []Candidate{host("a1", "10.0.0.1:1000", 65535)}, remotes, ca)
	sends, at, end := drive(c, time.Minute)
	if len(sends) != 2 || at[0] != 0 || at[1] != 500*time.Millisecond || sends[1].To != ap("10.0.0.2:2001") {
		t.Fatalf("sends at %v, want the second pair checked when the first fails at 500ms", at)
	}
	if c.State() != StateFailed || end != time.Second {
		t.Fatalf("state %v at %v, want Failed at 1s", c.State(), end)
	}
}

// relayAgents: A has a host and a relayed candidate, B a host.
func relayAgents(t *testing.T) (*Checker, *Checker, *harness) {
	t.Helper()
	ca, cb := pairCfg(true)
	la, ra, lb := host("a1", "10.0.0.1:1000", 65535), relay("ar", "198.51.100.9:7000"), host("b1", "10.0.0.2:2000", 65535)
	a := mustChecker(t, []Candidate{la, ra}, remote(lb), ca)
	b := mustChecker(t, []Candidate{lb}, remote(la, ra), cb)
	return a, b, newHarness(t, a, b, []string{"10.0.0.1:1000", "198.51.100.9:7000"}, []string{"10.0.0.2:2000"})
}

func isHostPath(from, to netip.AddrPort) bool {
	return (from == ap("10.0.0.1:1000") && to == ap("10.0.0.2:2000")) || (from == ap("10.0.0.2:2000") && to == ap("10.0.0.1:1000"))
}

func TestCheckerRelayWait(t *testing.T) {
	t.Run("only relay", func(t *testing.T) {
		a, b, h := relayAgents(t)
		h.drop = isHostPath
		if !h.run(3*time.Second, h.connected) {
			t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
		}
		for i, c := range h.agents {
			if p, _ := c.Selected(); !isRelayed(&p) {
				t.Fatalf("agent %d selected %v, want the relayed pair", i, p.String())
			}
		}
		var success, nominate time.Time
		for _, s := range h.log {
			if success.IsZero() && s.msg == stun.BindingSuccess && s.to == ap("198.51.100.9:7000") {
				success = s.at
			}
			if nominate.IsZero() && s.useCand {
				nominate = s.at
			}
		}
		if got := nominate.Sub(success); got != DefaultRelayWait {
			t.Fatalf("relayed pair nominated %v after its success, want RelayWait %v", got, DefaultRelayWait)
		}
	})
	t.Run("direct within the wait", func(t *testing.T) {
		a, b, h := relayAgents(t)
		h.latency = func(from, to netip.AddrPort) time.Duration {
			if isHostPath(from, to) {
				return 100 * time.Millisecond
			}
			return 10 * time.Millisecond
		}
		if !h.run(3*time.Second, h.connected) {
			t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
		}
		for i, c := range h.agents {
			if p, _ := c.Selected(); isRelayed(&p) {
				t.Fatalf("agent %d selected %v, want the direct pair", i, p.String())
			}
		}
		for _, s := range h.log {
			if s.useCand && s.from == ap("198.51.100.9:7000") {
				t.Fatal("the relayed pair was nominated")
			}
		}
	})
	t.Run("upgrade after the wait", func(t *testing.T) {
		a, b, h := relayAgents(t)
		h.latency = func(from, to netip.AddrPort) time.Duration {
			if isHostPath(from, to) {
				return 600 * time.Millisecond
			}
			return 10 * time.Millisecond
		}
		if !h.run(3*time.Second, h.connected) {
			t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
		}
		if p, _ := a.Selected(); !isRelayed(&p) {
			t.Fatalf("A first selected %v, want the relayed pair", p.String())
		}
		direct := func() bool {
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			return !isRelayed(&pa) && !isRelayed(&pb)
		}
		if !h.run(5*time.Second, direct) {
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			t.Fatalf("no upgrade to the direct pair: A %v, B %v", pa.String(), pb.String())
		}
	})
}

// TestCheckerRelayPreference: with relayed candidates only, the
// controlling agent nominates the relayed pair of higher priority (a relay
// through UDP, listed first) even when a lower one (through TCP) succeeds
// first, as long as the better one succeeds within the relay wait.
func TestCheckerRelayPreference(t *testing.T) {
	ca, cb := pairCfg(true)
	udpRelay, tcpRelay := cand("au", TypeRelay, "198.51.100.9:7000", 65535), cand("at", TypeRelay, "198.51.100.9:7001", 65534)
	udpRelay.Base, tcpRelay.Base = udpRelay.Addr, tcpRelay.Addr
	lb := host("b1", "10.0.0.2:2000", 65535)
	a := mustChecker(t, []Candidate{udpRelay, tcpRelay}, remote(lb), ca)
	b := mustChecker(t, []Candidate{lb}, remote(udpRelay, tcpRelay), cb)
	h := newHarness(t, a, b, []string{"198.51.100.9:7000", "198.51.100.9:7001"}, []string{"10.0.0.2:2000"})
	h.latency = func(from, to netip.AddrPort) time.Duration {
		if from == udpRelay.Addr || to == udpRelay.Addr {
			return 60 * time.Millisecond
		}
		return 5 * time.Millisecond
	}
	if !h.run(3*time.Second, h.connected) {
		t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
	}
	for i, c := range h.agents {
		if p, _ := c.Selected(); p.Local.Addr != udpRelay.Addr && p.Remote.Addr != udpRelay.Addr {
			t.Fatalf("agent %d selected %v, want the pair of the first relay", i, p.String())
		}
	}
}

// TestCheckerRelayNoWaitForDeadPeer: a pending pair that differs from the
// valid relayed pair only in the peer's candidate (B's first host address,
// which never answers) does not delay the nomination: it follows the
// relayed success at once, as with one relay.
func TestCheckerRelayNoWaitForDeadPeer(t *testing.T) {
	ca, cb := pairCfg(true)
	ra := relay("ar", "198.51.100.9:7000")
	dead, live := host("b1", "10.0.0.2:2000", 65535), host("b2", "10.0.0.3:2000", 65534)
	a := mustChecker(t, []Candidate{ra}, remote(dead, live), ca)
	b := mustChecker(t, []Candidate{dead, live}, remote(ra), cb)
	h := newHarness(t, a, b, []string{"198.51.100.9:7000"}, []string{"10.0.0.2:2000", "10.0.0.3:2000"})
	h.drop = func(from, to netip.AddrPort) bool { return to == dead.Addr || from == dead.Addr }
	if !h.run(3*time.Second, h.connected) {
		t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
	}
	var success, nominate time.Time
	for _, s := range h.log {
		if success.IsZero() && s.msg == stun.BindingSuccess && s.to == ra.Addr {
			success = s.at
		}
		if nominate.IsZero() && s.useCand {
			nominate = s.at
		}
	}
	if got := nominate.Sub(success); got >= DefaultRelayWait {
		t.Fatalf("relayed pair nominated %v after its success, want at once", got)
	}
}

func TestCheckerWrongPassword(t *testing.T) {
	ca, cb := pairCfg(true)
	ca.RemotePwd, cb.RemotePwd = "not-B-password-0123456", "not-A-password-0123456"
	ca.Rc, cb.Rc = 2, 2
	la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
	a := mustChecker(t, []Candidate{la}, remote(lb), ca)
	b := mustChecker(t, []Candidate{lb}, remote(la), cb)
	h := newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
	failed := func() bool { return a.State() == StateFailed && b.State() == StateFailed }
	if !h.run(time.Minute, failed) {
		t.Fatalf("states A %v, B %v; want both Failed", a.State(), b.State())
	}
	n401 := 0
	for _, s := range h.log {
		if s.msg == stun.BindingSuccess {
			t.Fatal("a check with the wrong password was answered with success")
		}
		if s.errCode == stun.CodeUnauthorized {
			n401++
		}
	}
	if n401 == 0 {
		t.Fatal("no 401 answer")
	}
	if len(a.Valid())+len(b.Valid()) != 0 {
		t.Fatal("a pair succeeded")
	}
	if h.errs[0] == 0 || h.errs[1] == 0 {
		t.Fatalf("unsigned 401s not reported as dropped: %v", h.errs)
	}
}

func TestCheckerDropsBadPackets(t *testing.T) {
	a, b, _ := twoHosts(t, true)
	out, _ := a.Next(epoch)
	req := out[0].Packet
	local, from := ap("10.0.0.2:2000"), ap("10.0.0.1:1000")

	badFP := append([]byte(nil), req...)
	badFP[len(badFP)-1] ^= 1
	key, _ := stun.ShortTermKey("passwordB-0123456789ab")
	var m stun.Message
	if err := m.Parse(req); err != nil {
		t.Fatal(err)
	}
	noFP := appendRequest(nil, &checkRequest{id: m.TransactionID, username: "ufB:ufA", priority: 1, controlling: true, tieBreaker: 2, key: key})
	noFP = noFP[:len(noFP)-8]
	noFP[3] -= 8 // drop FINGERPRINT from the length
	cases := map[string][]byte{
		"bad fingerprint": badFP,
		"no fingerprint":  noFP,
		"not stun":        []byte("hello, this is not a STUN packet"),
		"empty":           nil,
	}
	for name, pkt := range cases {
		t.Run(name, func(t *testing.T) {
			err := b.Handle(pkt, local, from, epoch)
			if !errors.Is(err, ErrDropped) {
				t.Fatalf("Handle = %v, want ErrDropped", err)
			}
			out, _ := b.Next(epoch)
			for _, o := range out {
				if o.To == from && o.Packet[0]&0x01 == 0x01 { // response classes set bit 8 of the type
					t.Fatal("answered a dropped packet")
				}
			}
		})
	}
	// A check on an address that is no base of B.
	if err := b.Handle(req, ap("10.9.9.9:1"), from, epoch); !errors.Is(err, ErrDropped) {
		t.Fatalf("check on an unknown base: Handle = %v, want ErrDropped", err)
	}
	// A check with an unknown comprehension-required attribute: 420.
	unk := stun.AppendHeader(nil, stun.BindingRequest, m.TransactionID)
	unk = stun.AppendAttrString(unk, stun.AttrUsername, "ufB:ufA")
	unk = stun.AppendUint32Attr(unk, stun.AttrPriority, 1)
	unk = stun.AppendAttr(unk, 0x7777, []byte{1, 2, 3, 4})
	unk = stun.AppendMessageIntegrity(unk, key)
	unk = stun.AppendFingerprint(unk)
	if err := b.Handle(unk, local, from, epoch); err == nil {
		t.Fatal("check with an unknown attribute accepted")
	}
	out, _ = b.Next(epoch)
	var resp stun.Message
	if len(out) == 0 || resp.Parse(out[0].Packet) != nil {
		t.Fatal("no answer to a check with an unknown attribute")
	}
	if code, _, _ := resp.ErrorCode(); code != stun.CodeUnknownAttribute || resp.CheckIntegrity(key) != nil {
		t.Fatalf("answer %v code %d, want a signed 420", resp.Type, code)
	}
	// The good request is answered, on the base it came to.
	if err := b.Handle(req, local, from, epoch); err != nil {
		t.Fatal(err)
	}
	out, _ = b.Next(epoch)
	if len(out) == 0 || out[0].From != local || out[0].To != from {
		t.Fatalf("no answer to a good check: %v", out)
	}
}

func TestCheckerAsymmetricResponse(t *testing.T) {
	a, _, _ := twoHosts(t, true)
	out, _ := a.Next(epoch)
	var m stun.Message
	if err := m.Parse(out[0].Packet); err != nil {
		t.Fatal(err)
	}
	key, _ := stun.ShortTermKey("passwordB-0123456789ab")
	resp := appendSuccess(nil, m.TransactionID, ap("10.0.0.1:1000"), key)
	// The answer comes from another address than the check went to.
	if err := a.Handle(resp, ap("10.0.0.1:1000"), ap("10.0.0.2:2001"), epoch); err != nil {
		t.Fatal(err)
	}
	if p := a.Pairs()[0]; p.State != PairFailed {
		t.Fatalf("pair %v after an asymmetric response, want Failed", p.String())
	}
	if len(a.Valid()) != 0 {
		t.Fatal("asymmetric response made a valid pair")
	}
}

func TestCheckerResponseIntegrity(t *testing.T) {
	a, _, _ := twoHosts(t, true)
	out, _ := a.Next(epoch)
	var m stun.Message
	if err := m.Parse(out[0].Packet); err != nil {
		t.Fatal(err)
	}
	wrong, _ := stun.ShortTermKey("someone-else-0123456789")
	resp := appendSuccess(nil, m.TransactionID, ap("10.0.0.1:1000"), wrong)
	if err := a.Handle(resp, ap("10.0.0.1:1000"), ap("10.0.0.2:2000"), epoch); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Handle = %v, want ErrUnauthenticated", err)
	}
	if p := a.Pairs()[0]; p.State != PairInProgress {
		t.Fatalf("pair %v after a forged response, want In-Progress", p.String())
	}
}

func TestCheckerConfigValidate(t *testing.T) {
	good, _ := pairCfg(true)
	for name, mod := range map[string]func(*CheckerConfig){
		"no local pwd":    func(c *CheckerConfig) { c.LocalPwd = "" },
		"no remote ufrag": func(c *CheckerConfig) { c.RemoteUfrag = "" },
		"negative Ta":     func(c *CheckerConfig) { c.Ta = -1 },
		"negative Rc":     func(c *CheckerConfig) { c.Rc = -1 },
		"negative max":    func(c *CheckerConfig) { c.MaxPairs = -1 },
	} {
		cfg := good
		mod(&cfg)
		if _, err := NewChecker(nil, nil, cfg); err == nil {
			t.Errorf("%s: NewChecker accepted it", name)
		}
	}
}

func FuzzCheckerHandle(f *testing.F) {
	a, b, _ := twoHosts(f, true)
	out, _ := a.Next(epoch)
	f.Add(out[0].Packet)
	_ = b.Handle(out[0].Packet, ap("10.0.0.2:2000"), ap("10.0.0.1:1000"), epoch)
	resp, _ := b.Next(epoch)
	for _, o := range resp {
		f.Add(o.Packet)
	}
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		a, b, _ := twoHosts(t, true)
		for _, c := range []*Checker{a, b} {
			c.Next(epoch)
			_ = c.Handle(pkt, ap("10.0.0.2:2000"), ap("10.0.0.1:1000"), epoch)
			_ = c.Handle(pkt, ap("10.0.0.1:1000"), ap("10.0.0.2:2000"), epoch)
			_ = c.Handle(pkt, ap("10.0.0.1:1000"), ap("192.0.2.7:9"), epoch)
			c.Next(epoch.Add(time.Second))
		}
	})
}

// TestCheckerRecheck: the direct path is blocked while the checks run, so
// both agents connect over the relay and every direct pair fails; when
// the path opens later, long after the checks' retransmissions ended,
// the agents check the failed direct pairs again after Recheck and move
// to the direct pair. While the path stays blocked, a round of rechecks
// comes Recheck after the previous round failed, no more often; with
// Recheck negative, never.
func TestCheckerRecheck(t *testing.T) {
	a, b, h := relayAgents(t)
	blocked := true
	h.drop = func(from, to netip.AddrPort) bool { return blocked && isHostPath(from, to) }
	if !h.run(3*time.Second, h.connected) {
		t.Fatalf("not connected: A %v, B %v", a.State(), b.State())
	}
	if !h.run(2*time.Minute, func() bool { return directFailed(h) }) {
		t.Fatal("the direct pairs did not fail")
	}
	failedAt := h.now
	if !h.run(failedAt.Sub(epoch)+DefaultRecheck+time.Second, func() bool { n, _ := hostChecks(h, failedAt); return n > 0 }) {
		t.Fatal("no recheck of the direct pairs")
	}
	if _, first := hostChecks(h, failedAt); first.Sub(failedAt) != DefaultRecheck {
		t.Fatalf("rechecked %v after the direct pairs failed, want %v", first.Sub(failedAt), DefaultRecheck)
	}
	// Ten minutes blocked: each round fails before the next is armed.
	start := h.now
	h.run(h.now.Sub(epoch)+10*time.Minute, func() bool { return false })
	n, _ := hostChecks(h, start)
	round := 40*time.Second + DefaultRecheck // a check's retransmissions (39.5 s), then the wait
	if most := 2 * int(10*time.Minute/round+1); n == 0 || n > most {
		t.Fatalf("%d rechecks in 10 minutes, want 1 to %d (one per agent and round)", n, most)
	}
	for i, c := range h.agents {
		if p, _ := c.Selected(); !isRelayed(&p) {
			t.Fatalf("agent %d left the relay for %v while the direct path was blocked", i, p.String())
		}
	}
	blocked = false
	direct := func() bool {
		pa, _ := a.Selected()
		pb, _ := b.Selected()
		return !isRelayed(&pa) && !isRelayed(&pb)
	}
	if !h.run(h.now.Sub(epoch)+round+5*time.Second, direct) {
		pa, _ := a.Selected()
		pb, _ := b.Selected()
		t.Fatalf("no move to the direct pair after the path opened: A %v, B %v", pa.String(), pb.String())
	}

	t.Run("off", func(t *testing.T) {
		ca, cb := pairCfg(true)
		ca.Recheck, cb.Recheck = -1, -1
		la, ra, lb := host("a1", "10.0.0.1:1000", 65535), relay("ar", "198.51.100.9:7000"), host("b1", "10.0.0.2:2000", 65535)
		a := mustChecker(t, []Candidate{la, ra}, remote(lb), ca)
		b := mustChecker(t, []Candidate{lb}, remote(la, ra), cb)
		h := newHarness(t, a, b, []string{"10.0.0.1:1000", "198.51.100.9:7000"}, []string{"10.0.0.2:2000"})
		h.drop = isHostPath
		if !h.run(2*time.Minute, func() bool { return h.connected() && directFailed(h) }) {
			t.Fatal("not connected on the relay with the direct pairs failed")
		}
		failedAt := h.now
		h.run(10*time.Minute, func() bool { return false })
		if n, _ := hostChecks(h, failedAt); n != 0 {
			t.Fatalf("%d checks on the direct path after it failed, with Recheck off", n)
		}
	})
}

// directFailed reports whether every direct pair of both agents failed.
func directFailed(h *harness) bool {
	for _, c := range h.agents {
		for _, p := range c.Pairs() {
			if !isRelayed(&p) && p.State != PairFailed {
				return false
			}
		}
	}
	return true
}

// hostChecks counts the checks (first sends) on the host path after
// since, and returns the first one's time.
func hostChecks(h *harness, since time.Time) (n int, first time.Time) {
	for ag := range 2 {
		for _, s := range h.requests(ag) {
			if s.at.After(since) && isHostPath(s.from, s.to) {
				n++
				if first.IsZero() || s.at.Before(first) {
					first = s.at
				}
			}
		}
	}
	return n, first
}
