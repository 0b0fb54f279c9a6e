package natbehavior

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// These tests script the network by hand to check that answers are matched
// to probes by transaction ID alone: pion's NAT behaviour tool reads "the
// next response" for each test, so a late or duplicate answer to one test is
// taken as the answer to the next one.

// script drives a Prober by hand with a fake clock.
type script struct {
	t   *testing.T
	p   *Prober
	now time.Time
}

type sent struct {
	Datagram
	id     stun.TransactionID
	change uint32
	at     time.Time
}

func newScript(t *testing.T, cfg Config) *script {
	p, err := NewProber(simA1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for s := Socket(0); s < 4; s++ {
		p.SetLocalAddr(s, localOf(s))
	}
	return &script{t: t, p: p, now: simT0}
}

// until polls at every wake-up up to end and returns what was sent, first
// transmissions only.
func (s *script) until(end time.Time) []sent {
	s.t.Helper()
	var all []sent
	seen := map[stun.TransactionID]bool{}
	for {
		out, next := s.p.Poll(s.now, nil)
		for _, d := range out {
			var m stun.Message
			if err := m.Parse(d.Packet); err != nil {
				s.t.Fatal(err)
			}
			if seen[m.TransactionID] {
				continue
			}
			seen[m.TransactionID] = true
			x := sent{Datagram: d, id: m.TransactionID, at: s.now}
			if v, ok := m.Get(stun.AttrChangeRequest); ok {
				x.change, _ = stun.Uint32(v)
			}
			all = append(all, x)
		}
		if s.p.Done() || next.IsZero() || next.After(end) {
			s.now = end
			return all
		}
		s.now = next
	}
}

func (s *script) after(d time.Duration) time.Time { return s.now.Add(d) }

// answer delivers a success response to id on socket sock from from.
func (s *script) answer(sock Socket, from netip.AddrPort, id stun.TransactionID, mapped netip.AddrPort) {
	s.t.Helper()
	b := stun.AppendHeader(nil, stun.BindingSuccess, id)
	b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, mapped, id)
	b = stun.AppendAddress(b, stun.AttrOtherAddress, simA2)
	b = stun.AppendFingerprint(b)
	s.p.Receive(sock, from, b, s.now)
}

func find(t *testing.T, all []sent, to netip.AddrPort, change uint32) sent {
	t.Helper()
	for _, x := range all {
		if x.To == to && x.change == change {
			return x
		}
	}
	t.Fatalf("nothing sent to %s with CHANGE-REQUEST %#x in %+v", to, change, all)
	return sent{}
}

func TestLateAnswersAreNotTakenForLaterTests(t *testing.T) {
	s := newScript(t, Config{NoHairpinning: true})
	m1 := netip.MustParseAddrPort("198.51.100.7:50000")
	m2 := netip.MustParseAddrPort("198.51.100.7:50001")
	m3 := netip.MustParseAddrPort("198.51.100.7:50002")
	alt := netip.AddrPortFrom(simA2.Addr(), simA1.Port())

	// Test I.
	t1 := find(t, s.until(simT0), simA1, 0)
	s.now = s.after(10 * time.Millisecond)
	s.answer(sockMapping, simA1, t1.id, m1)

	// Mapping test II and the filtering tests go out.
	all := s.until(s.after(500 * time.Millisecond))
	m2x := find(t, all, alt, 0)
	f2 := find(t, all, simA1, changeIP|changePort)
	f3 := find(t, all, simA1, changePort)
	if m2x.Socket != sockMapping || f2.Socket != sockFiltering || f3.Socket != sockFiltering {
		t.Fatalf("sockets: mapping II %d, filtering II %d, III %d", m2x.Socket, f2.Socket, f3.Socket)
	}

	// A duplicate of test I's answer (the server answered a
	// retransmission) arrives while mapping test II waits. Taken for test
	// II's answer, it would make a symmetric NAT look endpoint-independent.
	s.answer(sockMapping, simA1, t1.id, m1)
	if s.p.mapII.state != stateRunning {
		t.Fatal("a duplicate answer to test I ended mapping test II")
	}
	s.answer(sockMapping, alt, m2x.id, m2)
	m3x := find(t, s.until(s.after(500*time.Millisecond)), simA2, 0)
	s.answer(sockMapping, simA2, m3x.id, m3)

	// Filtering test II gets no answer in time; its answer arrives late,
	// from where test III's answer would come, while test III still waits.
	// Taken for test III's answer, it would say address-dependent.
	s.until(f2.at.Add(DefaultSilence.Total()))
	if s.p.filtII.state != stateDone || s.p.filtII.answered || s.p.filtIII.state != stateRunning {
		t.Fatalf("at %v: filtering II %v answered %v, III %v", s.now.Sub(simT0), s.p.filtII.state, s.p.filtII.answered, s.p.filtIII.state)
	}
	s.answer(sockFiltering, netip.AddrPortFrom(simA1.Addr(), simA2.Port()), f2.id, m1)
	s.until(s.after(time.Minute))
	r, err := s.p.Report()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mapping != AddressAndPortDependent || r.Filtering != AddressAndPortDependent {
		t.Errorf("mapping %s filtering %s, want address-and-port-dependent for both", r.Mapping, r.Filtering)
	}
	if r.Ignored != 2 {
		t.Errorf("Ignored = %d, want 2 (the duplicate and the late answer)", r.Ignored)
	}
}

func TestStrayPacketsAreIgnored(t *testing.T) {
	s := newScript(t, Config{NoHairpinning: true})
	m1 := netip.MustParseAddrPort("198.51.100.7:50000")
	alt := netip.AddrPortFrom(simA2.Addr(), simA1.Port())
	t1 := find(t, s.until(simT0), simA1, 0)
	s.answer(sockMapping, simA1, t1.id, m1)
	all := s.until(s.after(500 * time.Millisecond))
	m2x := find(t, all, alt, 0)

	// The right ID on the wrong socket.
	s.answer(sockFiltering, alt, m2x.id, m1)
	// An ID nobody used.
	s.answer(sockMapping, alt, stun.NewTransactionID(), m1)
	// Not STUN, truncated STUN, a classic RFC 3489 message.
	s.p.Receive(sockMapping, alt, []byte("hello, world"), s.now)
	good := stun.AppendXORAddress(stun.AppendHeader(nil, stun.BindingSuccess, m2x.id), stun.AttrXORMappedAddress, m1, m2x.id)
	s.p.Receive(sockMapping, alt, good[:len(good)-4], s.now)
	classic := stun.AppendAddress(stun.AppendClassicHeader(nil, stun.BindingSuccess, 1, m2x.id), stun.AttrMappedAddress, m1)
	s.p.Receive(sockMapping, alt, classic, s.now)
	// A damaged FINGERPRINT.
	bad := stun.AppendFingerprint(stun.AppendXORAddress(stun.AppendHeader(nil, stun.BindingSuccess, m2x.id), stun.AttrXORMappedAddress, m1, m2x.id))
	bad[len(bad)-1] ^= 1
	s.p.Receive(sockMapping, alt, bad, s.now)
	// An error response with a malformed ERROR-CODE.
	eb := stun.AppendAttr(stun.AppendHeader(nil, stun.BindingError, m2x.id), stun.AttrErrorCode, []byte{0, 0, 9, 99})
	s.p.Receive(sockMapping, alt, eb, s.now)
	// Our own request reflected to the mapping socket, but it is not the
	// hairpinning probe.
	s.p.Receive(sockMapping, alt, m2x.Packet, s.now)

	if s.p.mapII.state != stateRunning {
		t.Fatal("a stray packet ended mapping test II")
	}
	if s.p.ignored != 8 {
		t.Errorf("ignored %d, want 8", s.p.ignored)
	}

	// A response with an unknown comprehension-required attribute makes
	// the transaction fail (RFC 8489, Section 6.3.1).
	u := stun.AppendHeader(nil, stun.BindingSuccess, m2x.id)
	u = stun.AppendXORAddress(u, stun.AttrXORMappedAddress, m1, m2x.id)
	u = stun.AppendAttr(u, stun.AttrType(0x7f01), []byte{1, 2, 3, 4})
	s.p.Receive(sockMapping, alt, u, s.now)
	s.until(s.after(time.Minute))
	r, err := s.p.Report()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mapping != BehaviorUnknown || len(r.NotRun) != 1 || r.NotRun[0].Test != MappingTestII ||
		!strings.Contains(r.NotRun[0].Reason, "comprehension-required") {
		t.Errorf("mapping %s, not run %+v", r.Mapping, r.NotRun)
	}
	if r.Filtering != AddressAndPortDependent {
		t.Errorf("filtering %s", r.Filtering)
	}
}

func TestResponseWithoutMappedAddress(t *testing.T) {
	s := newScript(t, Config{NoHairpinning: true})
	t1 := find(t, s.until(simT0), simA1, 0)
	s.p.Receive(sockMapping, simA1, stun.AppendHeader(nil, stun.BindingSuccess, t1.id), s.now)
	s.until(s.after(time.Minute))
	if _, err := s.p.Report(); err == nil || !strings.Contains(err.Error(), "no usable mapped address") {
		t.Errorf("error %v", err)
	}
}
