// Package turncheck is the logic of `icebreaker turn check`: it diagnoses
// a TURN server step by step (resolve, reach with a STUN Binding, RFC 8489
// Section 7; authenticate and allocate, RFC 8656 Sections 7 and 9; relay
// data both ways, RFC 8656 Sections 11-12; RFC 6062 TCP allocations; and
// optionally the server's peer policy, RFC 8656 Section 21 on relaying to
// internal addresses), and prints the report as lines or JSON.
//
// The command parses the flags and hands Run the server's address
// resolution, its Binding request and its client configuration as funcs,
// so that this package does not depend on how flags name them.
package turncheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// Defaults of Config's zero values.
const (
	DefaultTimeout = 10 * time.Second
	DefaultCount   = 10
	// MaxCount bounds Config.Count.
	MaxCount = 10000
)

// Config says what to check and how.
type Config struct {
	// Server names the server in the report, e.g. "[::1]:3478 (udp)".
	Server string
	// Timeout limits each step; zero means DefaultTimeout.
	Timeout time.Duration
	// Peer is a UDP echo server's IP:PORT that the relay step sends to
	// instead of a second allocation; empty means a second allocation.
	// A Peer that does not parse fails the relay step.
	Peer string
	// Count is the number of datagrams relayed each way, at most
	// MaxCount; zero means DefaultCount.
	Count int
	// ProbePolicy adds the policy step: permissions to addresses a
	// server should refuse (no data is sent to them).
	ProbePolicy bool
	// NoTCP leaves out the RFC 6062 TCP allocation step.
	NoTCP bool

	// Resolve returns the server's address (the resolve step).
	Resolve func(ctx context.Context) (netip.AddrPort, error)
	// Reach sends a STUN Binding request to the server (the reach step).
	Reach func(ctx context.Context, server netip.AddrPort) (stunclient.BindingResult, error)
	// Client returns the TURN client configuration for the server; its
	// error fails the authenticate step.
	Client func(server netip.AddrPort) (turnclient.Config, error)
}

// Validate reports what is wrong with c.
func (c *Config) Validate() error {
	switch {
	case c.Timeout < 0:
		return errors.New("turncheck: negative timeout")
	case c.Count < 0 || c.Count > MaxCount:
		return fmt.Errorf("turncheck: count must be 0-%d", MaxCount)
	case c.Resolve == nil || c.Reach == nil || c.Client == nil:
		return errors.New("turncheck: Resolve, Reach and Client are required")
	}
	return nil
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Timeout == 0 {
		d.Timeout = DefaultTimeout
	}
	if d.Count == 0 {
		d.Count = DefaultCount
	}
	return d
}

// Step is one step's result, printed as a line or as JSON.
// A skipped step (the server does not offer what it tests) counts as OK.
type Step struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Skipped bool    `json:"skipped,omitempty"`
	MS      float64 `json:"ms"`
	Detail  string  `json:"detail,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Report is the outcome of a check: OK only if every step passed.
type Report struct {
	Server   string   `json:"server"`
	OK       bool     `json:"ok"`
	Steps    []Step   `json:"steps"`
	Warnings []string `json:"warnings,omitempty"`
}

// Run checks the server step by step, stopping at the first step that
// the later ones need, and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	rep := &Report{Server: c.Server}
	c.check(ctx, rep)
	rep.OK = true
	for _, s := range rep.Steps {
		rep.OK = rep.OK && s.OK
	}
	return rep, nil
}

// WriteJSON writes rep as one line of JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	return json.NewEncoder(w).Encode(rep)
}

// Print writes rep for people: a line per step, then the warnings.
func Print(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "TURN check of %s\n", rep.Server)
	for _, s := range rep.Steps {
		mark, text := "PASS", s.Detail
		switch {
		case s.Skipped:
			mark = "SKIP"
		case !s.OK:
			mark, text = "FAIL", s.Error
		}
		fmt.Fprintf(w, "  %s  %-12s %9s  %s\n", mark, s.Name, fmt.Sprintf("%.1fms", s.MS), text)
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "  WARN  %s\n", wn)
	}
}

// skipStep is the error of a step that does not apply to the server: the
// step is reported as skipped, which is not a failure.
type skipStep struct{ why string }

func (e *skipStep) Error() string { return e.why }

// step runs f as a named step, recording its time and outcome.
func step(rep *Report, name string, f func() (string, error)) bool {
	start := time.Now()
	detail, err := f()
	s := Step{Name: name, OK: err == nil, MS: ms(time.Since(start)), Detail: detail}
	if skip, ok := errors.AsType[*skipStep](err); ok {
		s.OK, s.Skipped, s.Detail, err = true, true, skip.why, nil
	}
	if err != nil {
		s.Error = err.Error()
	}
	rep.Steps = append(rep.Steps, s)
	return err == nil
}

// ms is d in milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (c *Config) check(ctx context.Context, rep *Report) {
	var server netip.AddrPort
	if !step(rep, "resolve", func() (string, error) {
		cx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		var err error
		server, err = c.Resolve(cx)
		if err != nil {
			return "", err // "cannot resolve HOST: ..."
		}
		return server.String(), nil
	}) {
		return
	}
	if !step(rep, "reach", func() (string, error) {
		cx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		res, err := c.Reach(cx, server)
		if err != nil {
			return "", Explain(err, server)
		}
		return fmt.Sprintf("STUN Binding answered, mapped address %s, RTT %s", res.Mapped, stunclient.FormatDuration(res.RTT)), nil
	}) {
		return
	}
	cfg, err := c.Client(server)
	if err != nil {
		step(rep, "authenticate", func() (string, error) { return "", err })
		return
	}
	start := time.Now()
	cx, cancel := context.WithTimeout(ctx, c.Timeout)
	relay, err := turnclient.Allocate(cx, cfg)
	cancel()
	elapsed := time.Since(start)
	se, isSTUN := errors.AsType[*stun.Error](err)
	authFailed := err != nil && (!isSTUN || se.Code == stun.CodeUnauthorized || se.Code == stun.CodeStaleNonce || errors.Is(err, stunclient.ErrNoCredentials))
	rep.Steps = append(rep.Steps, Step{Name: "authenticate", OK: !authFailed, MS: ms(elapsed)})
	if authFailed {
		rep.Steps[len(rep.Steps)-1].Error = Explain(err, server).Error()
		return
	}
	rep.Steps[len(rep.Steps)-1].Detail = "credentials accepted"
	rep.Steps = append(rep.Steps, Step{Name: "allocate", OK: err == nil, MS: ms(elapsed)})
	if err != nil {
		rep.Steps[len(rep.Steps)-1].Error = Explain(err, server).Error()
		return
	}
	defer relay.Close()
	rep.Steps[len(rep.Steps)-1].Detail = fmt.Sprintf("relayed address %s, lifetime %s", relay.LocalAddr(), relay.Lifetime())

	step(rep, "relay", func() (string, error) { return c.relayData(ctx, cfg, relay) })
	if !c.NoTCP {
		step(rep, "tcp-relay", func() (string, error) { return c.tcpRelay(ctx, cfg) })
	}
	if c.ProbePolicy {
		step(rep, "policy", func() (string, error) { return c.probePolicy(ctx, cfg, relay, server, rep) })
	}
}
