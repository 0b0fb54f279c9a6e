package ice

import (
	"errors"
	"math"
	"net/netip"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// cand builds a UDP candidate with the priority RFC 8445's formula gives
// for its type, a local preference and component 1.
func cand(f string, typ CandidateType, addr string, local uint32) Candidate {
	return Candidate{Foundation: f, Component: 1, Type: typ, Addr: ap(addr),
		Priority: Priority(typ.Preference(), local, 1)}
}

func TestPairPriority(t *testing.T) {
	// RFC 8445, Section 6.1.2.3, by hand with the RFC 8839 example
	// priorities: G = 2130706431 (host), D = 1694498815 (srflx).
	// 2^32*1694498815 + 2*2130706431 + 1 = 7277816993535754240 + 4261412862 + 1.
	const g, d = 2130706431, 1694498815
	if got, want := PairPriority(g, d), uint64(7277816993535754240+4261412862+1); got != want {
		t.Fatalf("PairPriority(G>D) = %d, want %d", got, want)
	}
	// Swapping the roles loses only the tie-breaking 1.
	if got, want := PairPriority(d, g), uint64(7277816993535754240+4261412862); got != want {
		t.Fatalf("PairPriority(G<D) = %d, want %d", got, want)
	}
	// Largest RFC-valid priorities: no overflow. Out of range: saturates.
	if got, want := PairPriority(1<<31-1, 1<<31-1), uint64(1<<31-1)<<32+2*(1<<31-1); got != want {
		t.Fatalf("PairPriority(2^31-1, 2^31-1) = %d, want %d", got, want)
	}
	if got := PairPriority(0xFFFFFFFF, 0xFFFFFFFF); got != math.MaxUint64 {
		t.Fatalf("PairPriority(max, max) = %d, want saturation", got)
	}
}

// Both agents must order the same pairs the same way: the controlling
// agent's list and the controlled agent's list, mirrored, have equal
// priorities.
func TestChecklistBothSidesAgree(t *testing.T) {
	a := []Candidate{cand("a1", TypeHost, "10.0.0.1:1000", 65535), cand("a2", TypeRelay, "198.51.100.1:2000", 65535)}
	b := []Candidate{cand("b1", TypeHost, "10.0.0.2:1000", 65534), cand("b2", TypeServerReflexive, "203.0.113.2:3000", 65535)}
	b[1].Base, b[1].Related = ap("10.9.9.9:3000"), ap("10.9.9.9:3000")
	ctl, err := NewChecklist(a, b, true, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// The controlled agent sees b's srflx as a remote candidate (no Base),
	// and its own srflx has no host candidate at its base, so it stays.
	ced, err := NewChecklist(b, a, false, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Len() != 4 || ced.Len() != 4 {
		t.Fatalf("lengths %d and %d, want 4", ctl.Len(), ced.Len())
	}
	cp, dp := ctl.Pairs(), ced.Pairs()
	for i := range cp {
		if cp[i].Priority != dp[i].Priority || cp[i].Local.Foundation != dp[i].Remote.Foundation ||
			cp[i].Remote.Foundation != dp[i].Local.Foundation {
			t.Fatalf("pair %d: %v (%d) vs %v (%d)", i, cp[i], cp[i].Priority, dp[i], dp[i].Priority)
		}
		if i > 0 && cp[i].Priority > cp[i-1].Priority {
			t.Fatalf("not sorted at %d", i)
		}
	}
	// After a role switch the controlled list equals the controlling one.
	ced.SetControlling(true)
	if !ced.Controlling() {
		t.Fatal("Controlling() false after SetControlling(true)")
	}
	for i, p := range ced.Pairs() {
		want := PairPriority(p.Local.Priority, p.Remote.Priority)
		if p.Priority != want {
			t.Fatalf("pair %d priority %d after role switch, want %d", i, p.Priority, want)
		}
	}
}

func TestNewChecklistFormsAndPrunes(t *testing.T) {
	host4 := cand("h4", TypeHost, "10.0.0.1:5000", 65534)
	srflx := cand("s4", TypeServerReflexive, "203.0.113.1:6000", 65535)
	srflx.Base, srflx.Related = host4.Addr, host4.Addr
	relay := cand("r4", TypeRelay, "198.51.100.1:7000", 65535)
	host6 := cand("h6", TypeHost, "[2001:db8::1]:5000", 65535)
	locals := []Candidate{srflx, host4, relay, host6}

	remotes := []Candidate{
		cand("R1", TypeHost, "192.168.1.2:4000", 65535),
		cand("R2", TypeServerReflexive, "203.0.113.9:4001", 65535),
		cand("R3", TypeHost, "[2001:db8::2]:4000", 65535),
		cand("R4", TypeHost, "[fe80::2]:4000", 65535),                                                // link-local: not with a global v6
		{Foundation: "R5", Component: 1, Host: "x.local", Addr: netip.AddrPortFrom(netip.Addr{}, 9)}, // unresolved
		cand("R6", TypeHost, "0.0.0.0:4000", 65535),                                                  // unspecified
		cand("R7", TypeHost, "192.168.1.3:0", 65535),                                                 // port 0
	}
	r8 := cand("R8", TypeHost, "192.168.1.4:4000", 65535)
	r8.Component = 2 // no local component 2
	remotes = append(remotes, r8)

	cl, err := NewChecklist(locals, remotes, true, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// v4: {host4, relay} x {R1, R2} = 4 (srflx pairs replaced by host4 and
	// dropped as redundant); v6: host6 x R3 = 1.
	if cl.Len() != 5 {
		for _, p := range cl.Pairs() {
			t.Log(p)
		}
		t.Fatalf("Len = %d, want 5", cl.Len())
	}
	for i, p := range cl.Pairs() {
		if p.Local.Type == TypeServerReflexive {
			t.Errorf("pair %d still has a server-reflexive local candidate: %v", i, p)
		}
		if p.State != PairFrozen {
			t.Errorf("pair %d state %v, want Frozen", i, p.State)
		}
	}
	// Highest first: host6/R3 (both local pref 65535), then host4 pairs.
	first := cl.Pairs()[0]
	if first.Local.Foundation != "h6" || first.Remote.Foundation != "R3" {
		t.Fatalf("first pair %v", first)
	}
	if p := cl.Find(host4.Addr, ap("203.0.113.9:4001"), TransportUDP); p == nil || p.Local.Foundation != "h4" {
		t.Fatalf("Find(host4, R2) = %v", p)
	}
	if p := cl.Find(srflx.Addr, ap("203.0.113.9:4001"), TransportUDP); p != nil {
		t.Fatalf("Find(srflx address) = %v, want nil (checks go from the base)", p)
	}
}

func TestNewChecklistSrflxWithoutHost(t *testing.T) {
	// No host candidate offered (a "--no-host" agent): the srflx pair stays,
	// its checks go from the base.
	srflx := cand("s4", TypeServerReflexive, "203.0.113.1:6000", 65535)
	srflx.Base = ap("10.0.0.1:5000")
	cl, err := NewChecklist([]Candidate{srflx}, []Candidate{cand("R1", TypeHost, "192.0.2.9:4000", 65535)}, true, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Len() != 1 || cl.Pairs()[0].Local.Type != TypeServerReflexive {
		t.Fatalf("pairs %v", cl.Pairs())
	}
	if cl.Find(srflx.Base, ap("192.0.2.9:4000"), TransportUDP) == nil {
		t.Fatal("Find by base failed")
	}
}

func TestNewChecklistTCP(t *testing.T) {
	tcp := func(f string, tt TCPType, addr string) Candidate {
		c := cand(f, TypeHost, addr, 65535)
		c.Transport, c.TCPType = TransportTCP, tt
		return c
	}
	locals := []Candidate{tcp("la", TCPTypeActive, "10.0.0.1:9"), tcp("lp", TCPTypePassive, "10.0.0.1:5000"), tcp("ls", TCPTypeSO, "10.0.0.1:5001"), cand("lu", TypeHost, "10.0.0.1:5002", 65535)}
	remotes := []Candidate{tcp("ra", TCPTypeActive, "10.0.0.2:9"), tcp("rp", TCPTypePassive, "10.0.0.2:6000"), tcp("rs", TCPTypeSO, "10.0.0.2:6001")}
	cl, err := NewChecklist(locals, remotes, true, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[PairFoundation]bool{}
	for _, p := range cl.Pairs() {
		got[p.Foundation()] = true
	}
	want := []PairFoundation{{"la", "rp"}, {"lp", "ra"}, {"ls", "rs"}}
	if len(got) != len(want) {
		t.Fatalf("pairs %v", cl.Pairs())
	}
	for _, f := range want {
		if !got[f] {
			t.Fatalf("missing pair %v in %v", f, cl.Pairs())
		}
	}
}

func TestNewChecklistLimit(t *testing.T) {
	var locals, remotes []Candidate
	for i := range 12 {
		locals = append(locals, cand("l", TypeHost, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 1000).String(), uint32(65535-i)))
		remotes = append(remotes, cand("r", TypeHost, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 1000).String(), uint32(65535-i)))
	}
	cl, err := NewChecklist(locals, remotes, true, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Len() != DefaultMaxPairs {
		t.Fatalf("Len = %d, want default limit %d", cl.Len(), DefaultMaxPairs)
	}
	small, err := NewChecklist(locals, remotes, true, ChecklistConfig{MaxPairs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if small.Len() != 3 {
		t.Fatalf("Len = %d, want 3", small.Len())
	}
	for i, p := range small.Pairs() {
		if p != cl.Pairs()[i] && p.Priority != cl.Pairs()[i].Priority {
			t.Fatalf("limited list is not the top of the full one at %d", i)
		}
	}
	if _, err := NewChecklist(nil, nil, true, ChecklistConfig{MaxPairs: -1}); err == nil {
		t.Fatal("negative MaxPairs accepted")
	}
	if empty, err := NewChecklist(nil, nil, true, ChecklistConfig{}); err != nil || empty.Len() != 0 || empty.NextOrdinary() != nil {
		t.Fatalf("empty check list: %v", err)
	}
}

// Two components (RTP and RTCP) and two foundation pairs, as in RFC 8445,
// Section 6.1.2.6: per foundation, the component-1 pair starts Waiting.
func twoComponentList(t *testing.T) *Checklist {
	t.Helper()
	mk := func(f string, typ CandidateType, addr string, comp uint16) Candidate {
		c := cand(f, typ, addr, 65535)
		c.Component = comp
		c.Priority = Priority(typ.Preference(), 65535, comp)
		return c
	}
	locals := []Candidate{
		mk("L1", TypeHost, "10.0.0.1:1000", 1), mk("L1", TypeHost, "10.0.0.1:1001", 2),
		mk("L2", TypeRelay, "198.51.100.1:2000", 1), mk("L2", TypeRelay, "198.51.100.1:2001", 2),
	}
	remotes := []Candidate{mk("R1", TypeHost, "10.0.0.2:3000", 1), mk("R1", TypeHost, "10.0.0.2:3001", 2)}
	cl, err := NewChecklist(locals, remotes, true, ChecklistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Len() != 4 {
		t.Fatalf("Len = %d", cl.Len())
	}
	return cl
}

func TestSetInitialStates(t *testing.T) {
	cl := twoComponentList(t)
	if n := cl.SetInitialStates(); n != 2 {
		t.Fatalf("SetInitialStates unfroze %d, want 2", n)
	}
	for _, p := range cl.Pairs() {
		want := PairFrozen
		if p.Local.Component == 1 {
			want = PairWaiting
		}
		if p.State != want {
			t.Errorf("%v component %d: state %v, want %v", p, p.Local.Component, p.State, want)
		}
	}
	// Highest-priority Waiting pair: host/host, component 1.
	next := cl.NextOrdinary()
	if next == nil || next.Local.Foundation != "L1" || next.Local.Component != 1 {
		t.Fatalf("NextOrdinary = %v", next)
	}
	// That check succeeds: its foundation's other pair (component 2) unfreezes.
	if err := next.SetState(PairInProgress); err != nil {
		t.Fatal(err)
	}
	if err := next.SetState(PairSucceeded); err != nil {
		t.Fatal(err)
	}
	if n := cl.UnfreezeFoundation(next.Foundation()); n != 1 {
		t.Fatalf("UnfreezeFoundation = %d, want 1", n)
	}
	if n := cl.UnfreezeFoundation(next.Foundation()); n != 0 {
		t.Fatalf("second UnfreezeFoundation = %d, want 0", n)
	}
}

func TestNextOrdinaryUnfreezes(t *testing.T) {
	cl := twoComponentList(t) // all Frozen
	p := cl.NextOrdinary()
	if p == nil || p.State != PairWaiting || p.Local.Component != 1 || p.Local.Foundation != "L1" {
		t.Fatalf("NextOrdinary = %v", p)
	}
	waiting := 0
	for _, q := range cl.Pairs() {
		if q.State == PairWaiting {
			waiting++
		}
	}
	if waiting != 2 { // one per foundation
		t.Fatalf("%d Waiting pairs, want 2", waiting)
	}
	// Once every foundation has a pair In-Progress, nothing is unfrozen.
	for _, q := range cl.Pairs() {
		if q.State == PairWaiting {
			if err := q.SetState(PairInProgress); err != nil {
				t.Fatal(err)
			}
		}
	}
	if q := cl.NextOrdinary(); q != nil {
		t.Fatalf("NextOrdinary = %v, want nil while both foundations are in progress", q)
	}
}

func TestPairSetState(t *testing.T) {
	all := []PairState{PairFrozen, PairWaiting, PairInProgress, PairSucceeded, PairFailed}
	allowed := map[[2]PairState]bool{
		{PairFrozen, PairWaiting}: true, {PairFrozen, PairFailed}: true,
		{PairWaiting, PairInProgress}: true, {PairWaiting, PairFailed}: true,
		{PairInProgress, PairSucceeded}: true, {PairInProgress, PairFailed}: true, {PairInProgress, PairWaiting}: true,
		{PairFailed, PairWaiting}: true,
	}
	for _, from := range all {
		for _, to := range all {
			p := &Pair{State: from}
			err := p.SetState(to)
			want := from == to || allowed[[2]PairState{from, to}]
			if (err == nil) != want {
				t.Errorf("%v -> %v: err %v, want allowed=%v", from, to, err, want)
			}
			if err != nil && (!errors.Is(err, ErrBadTransition) || p.State != from) {
				t.Errorf("%v -> %v: bad error %v or state changed to %v", from, to, err, p.State)
			}
			if err == nil && p.State != to {
				t.Errorf("%v -> %v: state is %v", from, to, p.State)
			}
		}
	}
	if PairInProgress.String() != "In-Progress" || PairState(9).String() != "PairState(9)" {
		t.Fatal("PairState.String")
	}
}
