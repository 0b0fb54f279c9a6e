package natbehavior

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// Defaults of Config.
var (
	// DefaultSilence is the schedule for probes whose expected outcome may
	// be silence: sends at 0, 250 and 750 ms and 1.75 s, and silence is
	// concluded at 2.75 s.
	DefaultSilence = stunclient.Retransmit{RTO: 250 * time.Millisecond, Rc: 4, Rm: 4}
)

const (
	// DefaultPace is the least time between the first transmissions of two
	// probes: RFC 5780, Section 5 allows at most ten new transactions a
	// second.
	DefaultPace = 100 * time.Millisecond
	// DefaultLifetimeMax is the longest idle time the binding lifetime test
	// tries.
	DefaultLifetimeMax = 2 * time.Minute
	// DefaultPort is the STUN port, used when the server has none.
	DefaultPort = 3478
)

// Config configures a Prober and Discover. The zero value runs the mapping,
// filtering and hairpinning tests with the defaults above; it is copied by
// NewProber and Discover. Only Network, Local and Logger are the driver's:
// the Prober ignores them.
type Config struct {
	// Retransmit is the schedule for requests that the server must answer
	// (test I, mapping tests II and III, the lifetime test's first
	// request). The zero value means RFC 8489's: 39.5 s.
	Retransmit stunclient.Retransmit
	// Timeout, when positive, ends such a request earlier than Retransmit
	// would.
	Timeout time.Duration
	// Silence is the schedule for probes where no answer is a result
	// (filtering tests II and III, hairpinning, lifetime checks). The
	// zero value means DefaultSilence.
	Silence stunclient.Retransmit
	// Pace is the least time between the starts of two probes; zero
	// means DefaultPace.
	Pace time.Duration
	// NoHairpinning skips the hairpinning test.
	NoHairpinning bool
	// Lifetime runs the binding lifetime test of RFC 5780, Section 4.6,
	// trying idle times up to LifetimeMax (zero: DefaultLifetimeMax). It
	// needs a server that supports RESPONSE-PORT and takes up to
	// LifetimeMax plus a few seconds.
	Lifetime    bool
	LifetimeMax time.Duration

	// Network is "udp" (the default: the server's first address), "udp4"
	// or "udp6".
	Network string
	// Local is the local address to bind. Its IP, when valid, is used by
	// every socket (the default is the unspecified address of the server's
	// family); its port, when not zero, by socket 0 only, which runs test I
	// and the mapping tests: RFC 5780, Section 4.1 advises testing the port
	// the application will use. The other sockets get fresh ports.
	Local netip.AddrPort
	// Logger receives debug messages about each probe; nil is silent.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	var errs []error
	check := func(name string, r stunclient.Retransmit) {
		if r.RTO < 0 || r.Rc < 0 || r.Rm < 0 {
			errs = append(errs, fmt.Errorf("natbehavior: %s has a negative value: %+v", name, r))
		}
	}
	check("Retransmit", c.Retransmit)
	check("Silence", c.Silence)
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("natbehavior: negative Timeout %v", c.Timeout))
	}
	if c.Pace < 0 {
		errs = append(errs, fmt.Errorf("natbehavior: negative Pace %v", c.Pace))
	}
	if c.LifetimeMax < 0 {
		errs = append(errs, fmt.Errorf("natbehavior: negative LifetimeMax %v", c.LifetimeMax))
	} else if c.Lifetime && c.LifetimeMax > 0 && c.LifetimeMax < time.Second {
		errs = append(errs, fmt.Errorf("natbehavior: LifetimeMax %v is below the shortest idle time tried (1s)", c.LifetimeMax))
	}
	switch c.Network {
	case "", "udp", "udp4", "udp6":
	default:
		errs = append(errs, fmt.Errorf("natbehavior: Network %q is not udp, udp4 or udp6", c.Network))
	}
	if l := c.Local.Addr().Unmap(); l.IsValid() {
		if (c.Network == "udp4" && !l.Is4()) || (c.Network == "udp6" && !l.Is6()) {
			errs = append(errs, fmt.Errorf("natbehavior: Local %s does not belong to network %s", c.Local, c.Network))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills in the zero values.
func (c Config) withDefaults() Config {
	if c.Silence == (stunclient.Retransmit{}) {
		c.Silence = DefaultSilence
	}
	if c.Pace == 0 {
		c.Pace = DefaultPace
	}
	if c.LifetimeMax == 0 {
		c.LifetimeMax = DefaultLifetimeMax
	}
	if c.Network == "" {
		c.Network = "udp"
	}
	c.Local = netx.Unmap(c.Local)
	return c
}

// lifetimeLadder lists the idle times the lifetime test tries, shortest
// first; those above the maximum are dropped and the maximum is added.
var lifetimeLadder = []time.Duration{
	1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second,
	30 * time.Second, 45 * time.Second, 60 * time.Second, 90 * time.Second, 120 * time.Second,
	180 * time.Second, 240 * time.Second, 300 * time.Second, 450 * time.Second, 600 * time.Second,
	900 * time.Second, 1200 * time.Second, 1800 * time.Second,
}

// lifetimeSteps returns the idle times to try for a maximum of max.
func lifetimeSteps(max time.Duration) []time.Duration {
	var s []time.Duration
	for _, d := range lifetimeLadder {
		if d < max {
			s = append(s, d)
		}
	}
	return append(s, max)
}
