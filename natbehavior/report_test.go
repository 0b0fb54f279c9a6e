package natbehavior

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

func TestVerdicts(t *testing.T) {
	EIM, ADM, APDM := EndpointIndependent, AddressDependent, AddressAndPortDependent
	EIF, ADF, APDF := EndpointIndependent, AddressDependent, AddressAndPortDependent
	for _, c := range []struct {
		nat        Tristate
		m, f       Behavior
		noRFC5780  bool
		oldName    string
		want, none []string
	}{
		{No, EIM, EIF, false, "open internet", []string{"not behind a NAT", "works with every peer"}, []string{"fails", "symmetric NAT ("}},
		{No, EIM, APDF, false, "symmetric UDP firewall", []string{"not behind a NAT, but a firewall", "With a peer behind a symmetric NAT", "TURN relay is needed"}, nil},
		{No, EIM, BehaviorUnknown, true, "unknown", []string{"not behind a NAT", "does not support RFC 5780"}, nil},
		{Yes, EIM, EIF, false, "full cone", []string{"any kind of NAT, symmetric NATs included"}, nil},
		{Yes, EIM, ADF, false, "restricted cone", []string{"any kind of NAT, symmetric NATs included"}, nil},
		{Yes, EIM, APDF, false, "port-restricted cone", []string{"With a peer behind a symmetric NAT", "TURN relay is needed"}, nil},
		{Yes, EIM, BehaviorUnknown, false, "unknown", []string{"could not be determined", "plan for a TURN relay"}, nil},
		{Yes, ADM, EIF, false, "symmetric", []string{"symmetric NAT", "endpoint-independent or address-dependent filtering", "symmetric or port-restricted cone NAT a TURN relay is needed"}, nil},
		{Yes, APDM, APDF, false, "symmetric", []string{"symmetric NAT", "TURN relay is needed"}, nil},
		{Yes, BehaviorUnknown, BehaviorUnknown, true, "unknown", []string{"does not support RFC 5780", "--alt-ip", "have a TURN relay ready"}, nil},
		{Unknown, BehaviorUnknown, APDF, false, "unknown", []string{"mapping behaviour could not be determined"}, nil},
	} {
		r := &Report{NATPresent: c.nat, Mapping: c.m, Filtering: c.f}
		if got := oldName(c.nat, c.m, c.f); got != c.oldName {
			t.Errorf("oldName(%s, %s, %s) = %q, want %q", c.nat, c.m, c.f, got, c.oldName)
		}
		v := verdict(r, c.noRFC5780)
		for _, w := range c.want {
			if !strings.Contains(v, w) {
				t.Errorf("verdict for NAT %s, %s/%s lacks %q: %s", c.nat, c.m, c.f, w, v)
			}
		}
		for _, n := range c.none {
			if strings.Contains(v, n) {
				t.Errorf("verdict for NAT %s, %s/%s has %q: %s", c.nat, c.m, c.f, n, v)
			}
		}
	}
}

func TestReportJSON(t *testing.T) {
	r := Report{
		Server:          netip.MustParseAddrPort("203.0.113.1:3478"),
		OtherAddress:    netip.MustParseAddrPort("203.0.113.2:3479"),
		LocalAddress:    netip.MustParseAddrPort("10.9.1.2:40000"),
		MappedAddress:   netip.MustParseAddrPort("203.0.113.10:40000"),
		NATPresent:      Yes,
		Mapping:         EndpointIndependent,
		Filtering:       AddressAndPortDependent,
		Hairpinning:     No,
		BindingLifetime: &Lifetime{Alive: 30 * time.Second, Expired: 45500 * time.Millisecond, Max: 2 * time.Minute},
		OldName:         "port-restricted cone",
		Verdict:         "v",
		NotRun:          []NotRun{{Test: MappingTestIII, Reason: "r"}},
		Ignored:         2,
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"mapping":"endpoint-independent"`, `"filtering":"address-and-port-dependent"`, `"nat_present":true`,
		`"hairpinning":false`, `"binding_lifetime":{"alive_seconds":30,"expired_seconds":45.5,"max_seconds":120}`,
		`"other_address":"203.0.113.2:3479"`, `"not_run":[{"test":"mapping test III","reason":"r"}]`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, r)
	}

	// Zero values: unknown and null, no alternate address, no lifetime.
	b, err = json.Marshal(Report{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"nat_present":null`) || !strings.Contains(s, `"mapping":"unknown"`) ||
		strings.Contains(s, "other_address") || strings.Contains(s, "binding_lifetime") || strings.Contains(s, "not_run") {
		t.Errorf("zero report: %s", s)
	}
	var bad Behavior
	if err := bad.UnmarshalText([]byte("cone")); err == nil {
		t.Error("UnmarshalText(cone) succeeded")
	}
	var tri Tristate
	if err := tri.UnmarshalJSON([]byte(`"yes"`)); err == nil {
		t.Error(`Tristate.UnmarshalJSON("yes") succeeded`)
	}
	if _, err := Behavior(9).MarshalText(); err == nil {
		t.Error("MarshalText(9) succeeded")
	}
}

func TestLifetimeString(t *testing.T) {
	for _, c := range []struct {
		l    Lifetime
		want string
	}{
		{Lifetime{Alive: 30 * time.Second, Expired: 45 * time.Second}, "between 30s and 45s"},
		{Lifetime{Alive: 2 * time.Minute, Max: 2 * time.Minute}, "longer than 2m0s"},
		{Lifetime{Expired: time.Second}, "shorter than 1s"},
	} {
		if got := c.l.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.l, got, c.want)
		}
	}
}

func TestReportText(t *testing.T) {
	r := &Report{
		Server:        netip.MustParseAddrPort("203.0.113.1:3478"),
		MappedAddress: netip.MustParseAddrPort("203.0.113.10:40000"),
		NATPresent:    Yes,
		OldName:       "unknown",
		Verdict:       strings.Repeat("word ", 40),
		NotRun: []NotRun{
			{Test: MappingTestII, Reason: "a"}, {Test: MappingTestIII, Reason: "a"}, {Test: FilteringTestII, Reason: "b"},
		},
	}
	s := r.Text()
	for _, want := range []string{
		"Server:            203.0.113.1:3478\n",
		"Public address:    203.0.113.10:40000 (behind a NAT)\n",
		"Hairpinning:       not tested\n",
		"  mapping test II, mapping test III: a\n  filtering test II: b\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "Local address") || strings.Contains(s, "Binding lifetime") {
		t.Errorf("text shows absent facts:\n%s", s)
	}
	for _, l := range strings.Split(s, "\n") {
		if len(l) > 78 && !strings.HasPrefix(l, "  ") {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}
}

// FuzzReceive feeds arbitrary packets to a prober at every stage of a run:
// it must never panic, and it must still finish.
func FuzzReceive(f *testing.F) {
	id := stun.TransactionID{1, 2, 3}
	ok := stun.AppendXORAddress(stun.AppendHeader(nil, stun.BindingSuccess, id), stun.AttrXORMappedAddress, simA1, id)
	f.Add(ok, uint8(0))
	f.Add(stun.AppendFingerprint(stun.AppendAddress(ok, stun.AttrOtherAddress, simA2)), uint8(1))
	f.Add(stun.AppendErrorCode(stun.AppendHeader(nil, stun.BindingError, id), 420, ""), uint8(2))
	f.Add([]byte("not stun"), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, sock uint8) {
		w := newWorld(t, natSim{mapping: AddressAndPortDependent, filtering: AddressDependent, hairpin: true}, serverSim{},
			Config{Lifetime: true, LifetimeMax: 2 * time.Second})
		// Deliver the fuzzed packet, with the transaction ID of every
		// probe made so far, after each event of a normal run.
		inject := func() {
			for _, pr := range w.p.probes {
				if len(b) >= stun.HeaderSize {
					copy(b[8:20], pr.id[:])
				}
				w.p.Receive(Socket(sock%8), simA1, b, w.now)
			}
		}
		for i := 0; !w.p.Done(); i++ {
			if i > 100000 {
				t.Fatal("no progress")
			}
			out, next := w.p.Poll(w.now, nil)
			for _, d := range out {
				w.send(d)
			}
			inject()
			if w.p.Done() {
				break
			}
			tn := next
			if len(w.events) > 0 && (tn.IsZero() || w.events[0].at.Before(tn)) {
				tn = w.events[0].at
			}
			if tn.IsZero() {
				continue // the injected packet finished the run
			}
			w.now = tn
			for len(w.events) > 0 && !w.events[0].at.After(w.now) {
				e := w.events[0]
				w.events = w.events[1:]
				e.fn()
			}
		}
		// Whatever the packet did, the run ended with a report or an error.
		if r, err := w.p.Report(); (r == nil) == (err == nil) {
			t.Fatalf("Report() = %v, %v", r, err)
		}
	})
}
