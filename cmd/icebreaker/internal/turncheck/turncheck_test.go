package turncheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

func TestPlural(t *testing.T) {
	if got := plural(1, "attempt"); got != "1 attempt" {
		t.Errorf("plural(1) = %q", got)
	}
	if got := plural(3, "attempt"); got != "3 attempts" {
		t.Errorf("plural(3) = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{
		Resolve: func(context.Context) (netip.AddrPort, error) { return netip.AddrPort{}, nil },
		Reach: func(context.Context, netip.AddrPort) (stunclient.BindingResult, error) {
			return stunclient.BindingResult{}, nil
		},
		Client: func(netip.AddrPort) (turnclient.Config, error) { return turnclient.Config{}, nil },
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("zero config with funcs: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no resolve":       func(c *Config) { c.Resolve = nil },
		"no reach":         func(c *Config) { c.Reach = nil },
		"no client":        func(c *Config) { c.Client = nil },
		"negative timeout": func(c *Config) { c.Timeout = -1 },
		"count too big":    func(c *Config) { c.Count = MaxCount + 1 },
		"negative count":   func(c *Config) { c.Count = -1 },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := Run(t.Context(), c); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}

// TestRunStopsAtFirstFailure: a failed step ends the check, the report is
// not OK, and the failure's reason is printed.
func TestRunStopsAtFirstFailure(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:3478")
	reached := false
	rep, err := Run(t.Context(), Config{
		Server:  "127.0.0.1:3478 (udp)",
		Resolve: func(context.Context) (netip.AddrPort, error) { return server, nil },
		Reach: func(context.Context, netip.AddrPort) (stunclient.BindingResult, error) {
			reached = true
			return stunclient.BindingResult{}, &stunclient.TimeoutError{Server: server, Attempts: 1}
		},
		Client: func(netip.AddrPort) (turnclient.Config, error) {
			return turnclient.Config{}, errors.New("must not be called")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reached || rep.OK || len(rep.Steps) != 2 || !rep.Steps[0].OK || rep.Steps[1].OK {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(rep.Steps[1].Error, "(1 attempt)") {
		t.Errorf("reach error %q, want the explained timeout", rep.Steps[1].Error)
	}
	var out bytes.Buffer
	Print(&out, rep)
	if !strings.Contains(out.String(), "PASS  resolve") || !strings.Contains(out.String(), "FAIL  reach") {
		t.Errorf("printed:\n%s", out.String())
	}
	out.Reset()
	if err := WriteJSON(&out, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Server != rep.Server || len(back.Steps) != 2 || back.OK {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
}
