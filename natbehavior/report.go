package natbehavior

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// Behavior is a NAT mapping or filtering behaviour in the terms of RFC 4787,
// Sections 4.1 and 5. The zero value is BehaviorUnknown. It marshals to and
// from the text of String ("endpoint-independent", ...).
type Behavior uint8

// Mapping and filtering behaviours.
const (
	// BehaviorUnknown: the tests could not run or gave no usable answer.
	BehaviorUnknown Behavior = iota
	// EndpointIndependent mapping reuses one public address and port for
	// every destination; endpoint-independent filtering lets anyone send to
	// it. Without a NAT, the mapping is endpoint-independent.
	EndpointIndependent
	// AddressDependent mapping gives a new public port per destination IP
	// address; address-dependent filtering lets in only IP addresses the
	// host has sent to.
	AddressDependent
	// AddressAndPortDependent mapping gives a new public port per
	// destination address and port; address-and-port-dependent filtering
	// lets in only the exact addresses and ports the host has sent to.
	AddressAndPortDependent
)

var behaviorNames = [...]string{
	BehaviorUnknown:         "unknown",
	EndpointIndependent:     "endpoint-independent",
	AddressDependent:        "address-dependent",
	AddressAndPortDependent: "address-and-port-dependent",
}

func (b Behavior) String() string {
	if int(b) < len(behaviorNames) {
		return behaviorNames[b]
	}
	return fmt.Sprintf("Behavior(%d)", uint8(b))
}

// MarshalText returns the text of String.
func (b Behavior) MarshalText() ([]byte, error) {
	if int(b) >= len(behaviorNames) {
		return nil, fmt.Errorf("natbehavior: invalid Behavior %d", uint8(b))
	}
	return []byte(b.String()), nil
}

// UnmarshalText parses the text of String.
func (b *Behavior) UnmarshalText(t []byte) error {
	for i, n := range behaviorNames {
		if string(t) == n {
			*b = Behavior(i)
			return nil
		}
	}
	return fmt.Errorf("natbehavior: unknown behaviour %q", t)
}

// Tristate is a yes/no answer that may be unknown. The zero value is Unknown.
// In JSON it is true, false or null.
type Tristate int8

// Tristate values.
const (
	Unknown Tristate = iota
	No
	Yes
)

func (t Tristate) String() string {
	switch t {
	case No:
		return "no"
	case Yes:
		return "yes"
	}
	return "unknown"
}

// MarshalJSON returns true, false or null.
func (t Tristate) MarshalJSON() ([]byte, error) {
	switch t {
	case No:
		return []byte("false"), nil
	case Yes:
		return []byte("true"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON accepts true, false and null.
func (t *Tristate) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*t = Yes
	case "false":
		*t = No
	case "null":
		*t = Unknown
	default:
		return fmt.Errorf("natbehavior: tristate must be true, false or null, not %s", b)
	}
	return nil
}

func tristate(b bool) Tristate {
	if b {
		return Yes
	}
	return No
}

// Lifetime is the result of the binding lifetime test (RFC 5780, Section
// 4.6): how long a NAT binding survived without outbound traffic. Idle times
// are the ones measured, not the nominal ones of the schedule. In JSON the
// durations are seconds.
type Lifetime struct {
	// Alive is the longest idle time after which the binding still
	// delivered a response; zero if none did.
	Alive time.Duration
	// Expired is the shortest idle time after which the binding was gone;
	// zero if it never expired in the test.
	Expired time.Duration
	// Max is the longest idle time the test was willing to try.
	Max time.Duration
}

func (l Lifetime) String() string {
	switch {
	case l.Expired == 0:
		return "longer than " + stunclient.FormatDuration(l.Alive)
	case l.Alive == 0:
		return "shorter than " + stunclient.FormatDuration(l.Expired)
	}
	return "between " + stunclient.FormatDuration(l.Alive) + " and " + stunclient.FormatDuration(l.Expired)
}

type lifetimeJSON struct {
	Alive   float64 `json:"alive_seconds"`
	Expired float64 `json:"expired_seconds,omitempty"`
	Max     float64 `json:"max_seconds"`
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// MarshalJSON writes {"alive_seconds":…, "expired_seconds":…, "max_seconds":…};
// expired_seconds is left out when the binding never expired.
func (l Lifetime) MarshalJSON() ([]byte, error) {
	return json.Marshal(lifetimeJSON{seconds(l.Alive), seconds(l.Expired), seconds(l.Max)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *Lifetime) UnmarshalJSON(b []byte) error {
	var j lifetimeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	*l = Lifetime{Alive: sec(j.Alive), Expired: sec(j.Expired), Max: sec(j.Max)}
	return nil
}

// NotRun is a test that could not run, or ran without a usable answer, and
// why.
type NotRun struct {
	Test   string `json:"test"`
	Reason string `json:"reason"`
}

// Names of the tests, as they appear in NotRun.
const (
	MappingTestII    = "mapping test II"
	MappingTestIII   = "mapping test III"
	FilteringTestII  = "filtering test II"
	FilteringTestIII = "filtering test III"
	LifetimeTest     = "binding lifetime test"
)

// Report is the outcome of a discovery run. It is a plain value: safe to
// copy, and to read from several goroutines once it has been returned.
type Report struct {
	// Server is the server address tested; OtherAddress is its alternate
	// address from OTHER-ADDRESS (zero when the server sent none).
	Server       netip.AddrPort `json:"server"`
	OtherAddress netip.AddrPort `json:"other_address,omitzero"`
	// LocalAddress is the address of the socket that ran test I (zero if
	// the driver could not tell); MappedAddress is the public address the
	// server saw for it.
	LocalAddress  netip.AddrPort `json:"local_address,omitzero"`
	MappedAddress netip.AddrPort `json:"mapped_address"`
	// NATPresent is No when the mapped address is the local address.
	NATPresent  Tristate `json:"nat_present"`
	Mapping     Behavior `json:"mapping"`
	Filtering   Behavior `json:"filtering"`
	Hairpinning Tristate `json:"hairpinning"`
	// BindingLifetime is set when the lifetime test ran and gave an answer.
	BindingLifetime *Lifetime `json:"binding_lifetime,omitempty"`
	// OldName is the RFC 3489 name of the combination: "full cone",
	// "restricted cone", "port-restricted cone", "symmetric", "open
	// internet", "symmetric UDP firewall", or "unknown".
	OldName string `json:"old_name"`
	// Verdict says in plain words with which peers a direct connection can
	// work and when a TURN relay is needed.
	Verdict string   `json:"verdict"`
	NotRun  []NotRun `json:"not_run,omitempty"`
	// PortMap is set when CheckPortMap ran: what the router's port
	// mapping does for this host.
	PortMap *PortMapReport `json:"portmap,omitempty"`
	// Ignored counts packets that matched no running probe: late answers
	// to tests already decided, duplicates, strangers, malformed packets.
	Ignored int `json:"ignored_packets"`
}

// oldName returns the RFC 3489 name for a mapping and filtering pair.
func oldName(nat Tristate, m, f Behavior) string {
	if nat == No {
		switch f {
		case EndpointIndependent:
			return "open internet"
		case AddressDependent, AddressAndPortDependent:
			return "symmetric UDP firewall"
		}
		return "unknown"
	}
	switch m {
	case AddressDependent, AddressAndPortDependent:
		return "symmetric"
	case EndpointIndependent:
		switch f {
		case EndpointIndependent:
			return "full cone"
		case AddressDependent:
			return "restricted cone"
		case AddressAndPortDependent:
			return "port-restricted cone"
		}
	}
	return "unknown"
}

// verdict explains what the behaviour means for connecting to peers. The
// rules are those of hole punching (RFC 8445 with server-reflexive
// candidates): two endpoint-independent mappings always meet; a dependent
// ("symmetric") mapping shows the peer a port it has never sent to, so the
// peer's filter must ignore ports (endpoint-independent or address-dependent
// filtering) and the peer's own mapping must be endpoint-independent.
func verdict(r *Report, noRFC5780 bool) string {
	var b strings.Builder
	if r.NATPresent == No {
		switch r.Filtering {
		case EndpointIndependent:
			return "This host is not behind a NAT and nothing filters incoming UDP: peers can reach it directly. " +
				"A direct connection works with every peer, whatever its NAT; a TURN relay is needed only when the peer's network blocks UDP altogether."
		case BehaviorUnknown:
			b.WriteString("This host is not behind a NAT: its public address is its own. ")
			if noRFC5780 {
				b.WriteString("Whether a firewall filters incoming UDP could not be tested, because the server does not support RFC 5780. ")
			} else {
				b.WriteString("Whether a firewall filters incoming UDP could not be determined. ")
			}
			b.WriteString("A direct connection works with peers whose mapping is endpoint-independent; " +
				"with peers behind a symmetric NAT it works only if nothing here filters incoming UDP, otherwise a TURN relay is needed.")
			return b.String()
		}
		b.WriteString("This host is not behind a NAT, but a firewall lets in only answers to traffic it sent. ")
	}
	switch r.Mapping {
	case EndpointIndependent:
		switch r.Filtering {
		case EndpointIndependent:
			b.WriteString("The public address stays the same for every destination and anyone may send to it, " +
				"so a direct connection works with peers behind any kind of NAT, symmetric NATs included. " +
				"A TURN relay is needed only when the peer's network blocks UDP.")
		case AddressDependent:
			b.WriteString("The public address stays the same for every destination, and a peer may send to it from any port once this host has sent to the peer's IP address, " +
				"so a direct connection works with peers behind any kind of NAT, symmetric NATs included. " +
				"A TURN relay is needed only when the peer's network blocks UDP.")
		case AddressAndPortDependent:
			b.WriteString("The public address stays the same for every destination, but only the exact address and port contacted may answer. " +
				"A direct connection works with peers whose mapping is endpoint-independent (no NAT, full cone, restricted cone or port-restricted cone NATs). " +
				"With a peer behind a symmetric NAT (address- or port-dependent mapping) it fails, and a TURN relay is needed.")
		default:
			b.WriteString("The public address stays the same for every destination, which is what hole punching needs: " +
				"a direct connection works with peers whose mapping is endpoint-independent. " +
				"Whether it also works with peers behind a symmetric NAT depends on the filtering, which could not be determined; plan for a TURN relay with those.")
		}
	case AddressDependent, AddressAndPortDependent:
		b.WriteString("This is a symmetric NAT: it gives a new public port for each destination, so peers never see the port it will use for them. " +
			"A direct connection works only with peers that have endpoint-independent mapping and endpoint-independent or address-dependent filtering " +
			"(no NAT, full cone or restricted cone NATs). " +
			"With peers behind a symmetric or port-restricted cone NAT a TURN relay is needed.")
	default:
		if noRFC5780 {
			b.WriteString("The server does not support RFC 5780 (it sent no OTHER-ADDRESS), so the NAT's behaviour cannot be measured with it; " +
				"use a STUN server with two IP addresses, such as 'icebreaker serve --alt-ip'. ")
		} else {
			b.WriteString("The NAT's mapping behaviour could not be determined. ")
		}
		b.WriteString("Without it there is no telling whether hole punching will work: have a TURN relay ready.")
	}
	return b.String()
}

// Text writes the report for people: one fact per line, then the verdict.
func (r *Report) Text() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-18s %s\n", k+":", v) }
	srv := r.Server.String()
	if r.OtherAddress.IsValid() {
		srv += " (alternate " + r.OtherAddress.String() + ")"
	}
	line("Server", srv)
	if r.LocalAddress.IsValid() {
		line("Local address", r.LocalAddress.String())
	}
	pub := r.MappedAddress.String()
	switch r.NATPresent {
	case Yes:
		pub += " (behind a NAT)"
	case No:
		pub += " (no NAT)"
	}
	line("Public address", pub)
	line("Mapping", r.Mapping.String())
	line("Filtering", r.Filtering.String())
	line("Old name", r.OldName)
	hp := r.Hairpinning.String()
	if r.Hairpinning == Unknown {
		hp = "not tested"
	}
	line("Hairpinning", hp)
	if r.BindingLifetime != nil {
		line("Binding lifetime", r.BindingLifetime.String())
	}
	if r.PortMap != nil {
		r.PortMap.writeLines(line)
	}
	b.WriteString("\n")
	b.WriteString(wrap(r.Verdict, 78))
	b.WriteString("\n")
	if len(r.NotRun) > 0 {
		b.WriteString("\nNot measured:\n")
		// Tests that failed for one reason share a line.
		for i := 0; i < len(r.NotRun); {
			j := i + 1
			tests := []string{r.NotRun[i].Test}
			for ; j < len(r.NotRun) && r.NotRun[j].Reason == r.NotRun[i].Reason; j++ {
				tests = append(tests, r.NotRun[j].Test)
			}
			fmt.Fprintf(&b, "  %s: %s\n", strings.Join(tests, ", "), r.NotRun[i].Reason)
			i = j
		}
	}
	return b.String()
}

// wrap breaks s into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(w) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
