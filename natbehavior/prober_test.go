package natbehavior

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// TestBehaviors runs every mapping and filtering combination through the
// simulated NAT and checks that the prober names it.
func TestBehaviors(t *testing.T) {
	names := map[[2]Behavior]string{
		{EndpointIndependent, EndpointIndependent}:     "full cone",
		{EndpointIndependent, AddressDependent}:        "restricted cone",
		{EndpointIndependent, AddressAndPortDependent}: "port-restricted cone",
	}
	all := []Behavior{EndpointIndependent, AddressDependent, AddressAndPortDependent}
	for _, m := range all {
		for _, f := range all {
			for _, hp := range []bool{false, true} {
				name := "mapping=" + m.String() + "/filtering=" + f.String()
				if hp {
					name += "/hairpin"
				}
				t.Run(name, func(t *testing.T) {
					w := newWorld(t, natSim{mapping: m, filtering: f, hairpin: hp}, serverSim{}, Config{})
					r, err := w.run()
					if err != nil {
						t.Fatal(err)
					}
					if r.Mapping != m || r.Filtering != f {
						t.Errorf("got mapping %s, filtering %s; want %s, %s", r.Mapping, r.Filtering, m, f)
					}
					if r.NATPresent != Yes || r.Hairpinning != tristate(hp) {
						t.Errorf("NATPresent %s, Hairpinning %s; want yes, %v", r.NATPresent, r.Hairpinning, hp)
					}
					want := names[[2]Behavior{m, f}]
					if want == "" {
						want = "symmetric"
					}
					if r.OldName != want {
						t.Errorf("OldName %q, want %q", r.OldName, want)
					}
					if r.MappedAddress.Addr() != simPublic || r.LocalAddress != localOf(sockMapping) || r.OtherAddress != simA2 {
						t.Errorf("addresses: mapped %s local %s other %s", r.MappedAddress, r.LocalAddress, r.OtherAddress)
					}
					if len(r.NotRun) != 0 || r.Ignored != 0 || r.BindingLifetime != nil {
						t.Errorf("NotRun %v, Ignored %d, lifetime %v", r.NotRun, r.Ignored, r.BindingLifetime)
					}
					// Filtering tests II and III go out together; silence costs
					// one DefaultSilence, not two.
					if d := w.now.Sub(simT0); d > time.Second+DefaultSilence.Total() {
						t.Errorf("run took %v of simulated time", d)
					}
					checkPace(t, w, DefaultPace)
				})
			}
		}
	}
}

// checkPace checks that no two transactions started closer than pace.
func checkPace(t *testing.T, w *world, pace time.Duration) {
	t.Helper()
	for i := 1; i < len(w.firsts); i++ {
		if d := w.firsts[i].Sub(w.firsts[i-1]); d < pace {
			t.Errorf("transactions %d and %d started %v apart, want at least %v", i-1, i, d, pace)
		}
	}
}

func TestNoNAT(t *testing.T) {
	for _, c := range []struct {
		name     string
		firewall Behavior
		oldName  string
	}{
		{"open", EndpointIndependent, "open internet"},
		{"firewall", AddressAndPortDependent, "symmetric UDP firewall"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, natSim{none: true, filtering: c.firewall}, serverSim{}, Config{})
			r, err := w.run()
			if err != nil {
				t.Fatal(err)
			}
			if r.NATPresent != No || r.Mapping != EndpointIndependent || r.Filtering != c.firewall || r.OldName != c.oldName {
				t.Errorf("got NAT %s mapping %s filtering %s old name %q", r.NATPresent, r.Mapping, r.Filtering, r.OldName)
			}
			if r.MappedAddress != r.LocalAddress || r.Hairpinning != Yes {
				t.Errorf("mapped %s local %s hairpinning %s", r.MappedAddress, r.LocalAddress, r.Hairpinning)
			}
			// Section 4.3: no NAT, so mapping tests II and III are not needed.
			for _, d := range w.sent {
				if d.To.Addr() == simA2.Addr() {
					t.Errorf("sent a mapping test to %s without a NAT", d.To)
				}
			}
			if !strings.Contains(r.Verdict, "not behind a NAT") {
				t.Errorf("verdict: %s", r.Verdict)
			}
		})
	}
}

func TestNoLocalAddressMeansUnknownNAT(t *testing.T) {
	w := newWorld(t, natSim{mapping: EndpointIndependent, filtering: EndpointIndependent}, serverSim{}, Config{})
	w.seen[sockMapping] = true // the driver never says where socket 0 is bound
	r, err := w.run()
	if err != nil {
		t.Fatal(err)
	}
	if r.NATPresent != Unknown || r.LocalAddress.IsValid() || r.Mapping != EndpointIndependent {
		t.Errorf("NATPresent %s, local %s, mapping %s", r.NATPresent, r.LocalAddress, r.Mapping)
	}
}

func TestServerWithoutRFC5780(t *testing.T) {
	w := newWorld(t, natSim{mapping: AddressAndPortDependent, filtering: AddressAndPortDependent}, serverSim{no5780: true}, Config{})
	r, err := w.run()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mapping != BehaviorUnknown || r.Filtering != BehaviorUnknown || r.OldName != "unknown" {
		t.Errorf("mapping %s filtering %s old name %q", r.Mapping, r.Filtering, r.OldName)
	}
	if r.OtherAddress.IsValid() || !r.MappedAddress.IsValid() || r.NATPresent != Yes || r.Hairpinning != No {
		t.Errorf("other %s mapped %s NAT %s hairpinning %s", r.OtherAddress, r.MappedAddress, r.NATPresent, r.Hairpinning)
	}
	var tests []string
	for _, n := range r.NotRun {
		tests = append(tests, n.Test)
		if !strings.Contains(n.Reason, "no OTHER-ADDRESS") || !strings.Contains(n.Reason, "RFC 5780") {
			t.Errorf("%s: reason %q", n.Test, n.Reason)
		}
	}
	if strings.Join(tests, ",") != strings.Join([]string{MappingTestII, MappingTestIII, FilteringTestII, FilteringTestIII}, ",") {
		t.Errorf("not run: %v", tests)
	}
	if !strings.Contains(r.Verdict, "does not support RFC 5780") {
		t.Errorf("verdict: %s", r.Verdict)
	}
	// Nothing was sent with CHANGE-REQUEST, nor to an alternate address.
	for _, d := range w.sent {
		var m stun.Message
		if err := m.Parse(d.Packet); err != nil || m.Has(stun.AttrChangeRequest) || d.To != simA1 && d.To.Addr() != simPublic {
			t.Errorf("sent %v to %s", m.Attrs, d.To)
		}
	}
}

func TestServerProblems(t *testing.T) {
	for _, c := range []struct {
		name      string
		srv       serverSim
		mapping   Behavior
		filtering Behavior
		notRun    string
		reason    string
	}{
		{"change rejected", serverSim{reject5780: true}, AddressAndPortDependent, BehaviorUnknown, FilteringTestII, "420"},
		{"change ignored", serverSim{ignoreChange: true}, AddressAndPortDependent, BehaviorUnknown, FilteringTestII, "does not honour CHANGE-REQUEST"},
		{"alternate unreachable", serverSim{deafAlt: true}, BehaviorUnknown, AddressAndPortDependent, MappingTestII, "no response from 192.0.2.2:3478 in 39.5s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, natSim{mapping: AddressAndPortDependent, filtering: AddressAndPortDependent}, c.srv, Config{})
			r, err := w.run()
			if err != nil {
				t.Fatal(err)
			}
			if r.Mapping != c.mapping || r.Filtering != c.filtering {
				t.Errorf("mapping %s filtering %s, want %s %s", r.Mapping, r.Filtering, c.mapping, c.filtering)
			}
			if len(r.NotRun) != 1 || r.NotRun[0].Test != c.notRun || !strings.Contains(r.NotRun[0].Reason, c.reason) {
				t.Errorf("NotRun %+v, want %s: ...%s...", r.NotRun, c.notRun, c.reason)
			}
		})
	}
}

func TestNoConnectivity(t *testing.T) {
	cfg := Config{Retransmit: stunclient.Retransmit{RTO: 100 * time.Millisecond, Rc: 7, Rm: 16}, Timeout: 2 * time.Second}
	w := newWorld(t, natSim{mapping: EndpointIndependent}, serverSim{silent: true}, cfg)
	_, err := w.run()
	var te *stunclient.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, stunclient.ErrTimeout) {
		t.Fatalf("error %v, want a *stunclient.TimeoutError", err)
	}
	if te.Server != simA1 || te.Waited != 2*time.Second || te.Attempts != 5 {
		t.Errorf("timeout %+v", te)
	}
	if !strings.Contains(err.Error(), "no response from 192.0.2.1:3478 after 2s") {
		t.Errorf("message %q", err)
	}
	// RFC 8489, Section 6.2.1: sends at 0, RTO, 3 RTO, 7 RTO, 15 RTO; the
	// Timeout cuts the schedule at 2 s.
	want := []time.Duration{0, 100, 300, 700, 1500}
	if len(w.sent) != len(want) {
		t.Fatalf("%d sends, want %d", len(w.sent), len(want))
	}
}

func TestSendTimes(t *testing.T) {
	cfg := Config{Retransmit: stunclient.Retransmit{RTO: 100 * time.Millisecond, Rc: 7, Rm: 16}, Timeout: 2 * time.Second}
	p, err := NewProber(simA1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := simT0
	var at []time.Duration
	for !p.Done() {
		out, next := p.Poll(now, nil)
		for range out {
			at = append(at, now.Sub(simT0))
		}
		if !p.Done() {
			now = next
		}
	}
	want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond, 1500 * time.Millisecond}
	if len(at) != len(want) {
		t.Fatalf("sent at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("sent at %v, want %v", at, want)
		}
	}
	if now.Sub(simT0) != 2*time.Second {
		t.Errorf("gave up at %v", now.Sub(simT0))
	}
}

func TestErrorResponseToTestI(t *testing.T) {
	w := newWorld(t, natSim{mapping: EndpointIndependent}, serverSim{errorCode: stun.CodeUnauthorized}, Config{})
	_, err := w.run()
	var se *stun.Error
	if !errors.As(err, &se) || se.Code != stun.CodeUnauthorized {
		t.Fatalf("error %v, want a 401 *stun.Error", err)
	}
}

func TestLifetime(t *testing.T) {
	for _, c := range []struct {
		name     string
		nat      natSim
		max      time.Duration
		alive    [2]time.Duration // range of Alive
		expired  [2]time.Duration // range of Expired (zero: never)
		duration time.Duration    // at most this much simulated time
	}{
		{"expires", natSim{mapping: EndpointIndependent, filtering: AddressAndPortDependent, lifetime: 10 * time.Second},
			time.Minute, [2]time.Duration{8 * time.Second, 9 * time.Second}, [2]time.Duration{15 * time.Second, 16 * time.Second}, 20 * time.Second},
		{"symmetric", natSim{mapping: AddressAndPortDependent, filtering: AddressAndPortDependent, lifetime: 3 * time.Second},
			time.Minute, [2]time.Duration{2 * time.Second, 3 * time.Second}, [2]time.Duration{4 * time.Second, 5 * time.Second}, 10 * time.Second},
		{"short", natSim{mapping: EndpointIndependent, filtering: AddressAndPortDependent, lifetime: 500 * time.Millisecond},
			time.Minute, [2]time.Duration{0, 0}, [2]time.Duration{time.Second, 2 * time.Second}, 5 * time.Second},
		{"never", natSim{none: true, filtering: EndpointIndependent},
			5 * time.Second, [2]time.Duration{5 * time.Second, 6 * time.Second}, [2]time.Duration{0, 0}, 10 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, c.nat, serverSim{}, Config{Lifetime: true, LifetimeMax: c.max, NoHairpinning: true})
			r, err := w.run()
			if err != nil {
				t.Fatal(err)
			}
			l := r.BindingLifetime
			if l == nil {
				t.Fatalf("no lifetime; not run: %v", r.NotRun)
			}
			if l.Alive < c.alive[0] || l.Alive > c.alive[1] || l.Expired < c.expired[0] || l.Expired > c.expired[1] || l.Max != c.max {
				t.Errorf("lifetime %+v (%s), want alive in %v, expired in %v", *l, l, c.alive, c.expired)
			}
			if d := w.now.Sub(simT0); d > c.duration {
				t.Errorf("took %v of simulated time", d)
			}
			if r.Mapping != c.nat.mapping && !c.nat.none {
				t.Errorf("mapping %s", r.Mapping)
			}
			checkPace(t, w, DefaultPace)
		})
	}
}

func TestLifetimeWithoutResponsePort(t *testing.T) {
	w := newWorld(t, natSim{mapping: EndpointIndependent, filtering: EndpointIndependent}, serverSim{noRespPort: true},
		Config{Lifetime: true, LifetimeMax: 10 * time.Second, NoHairpinning: true})
	r, err := w.run()
	if err != nil {
		t.Fatal(err)
	}
	if r.BindingLifetime != nil || len(r.NotRun) != 1 || r.NotRun[0].Test != LifetimeTest || !strings.Contains(r.NotRun[0].Reason, "420") {
		t.Errorf("lifetime %v, not run %+v", r.BindingLifetime, r.NotRun)
	}
	// The first refusal stops the test: it does not wait out the other steps.
	if d := w.now.Sub(simT0); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestReportBeforeDone(t *testing.T) {
	p, err := NewProber(simA1, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Report(); !errors.Is(err, ErrNotDone) {
		t.Errorf("Report before the run: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Timeout: -1},
		{Pace: -1},
		{Retransmit: stunclient.Retransmit{RTO: -1}},
		{Silence: stunclient.Retransmit{Rc: -1}},
		{Lifetime: true, LifetimeMax: 100 * time.Millisecond},
		{Network: "tcp"},
		{Network: "udp6", Local: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
		if _, err := NewProber(simA1, c); err == nil {
			t.Errorf("NewProber(%+v): no error", c)
		}
	}
	if _, err := NewProber(netip.AddrPort{}, Config{}); err == nil {
		t.Error("NewProber with no server: no error")
	}
	if _, err := NewProber(netip.MustParseAddrPort("0.0.0.0:3478"), Config{}); err == nil {
		t.Error("NewProber with the unspecified address: no error")
	}
}

func TestLifetimeSteps(t *testing.T) {
	got := lifetimeSteps(2 * time.Minute)
	want := []time.Duration{1, 2, 4, 8, 15, 30, 45, 60, 90, 120}
	if len(got) != len(want) {
		t.Fatalf("steps %v", got)
	}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("steps %v", got)
		}
	}
	if got := lifetimeSteps(10 * time.Second); got[len(got)-1] != 10*time.Second || got[len(got)-2] != 8*time.Second {
		t.Errorf("steps for 10s: %v", got)
	}
}
