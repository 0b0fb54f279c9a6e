package turncheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// probePolicy asks for permissions (only; no data is sent) to addresses a
// TURN server should refuse to relay to, and warns about each it allows.
// A permission for the server's own address is harmless as long as the
// server drops what the relay sends to its own ports (permissions are per
// IP, not port: RFC 8656, Section 9), so there it sends one Binding
// request to the server's own port through the relay and warns only if
// the answer comes back.
func (c *Config) probePolicy(ctx context.Context, cfg turnclient.Config, a *turnclient.Relay, server netip.AddrPort, rep *Report) (string, error) {
	type target struct {
		ip   netip.Addr
		what string
		own  bool
	}
	targets := []target{
		{netip.MustParseAddr("127.0.0.1"), "loopback", false},
		{netip.MustParseAddr("::ffff:127.0.0.1"), "IPv4-mapped loopback", false},
		{netip.MustParseAddr("10.0.0.1"), "private network", false},
		{netip.MustParseAddr("169.254.169.254"), "link-local cloud metadata service", false},
	}
	own := false
	for i := range targets {
		if targets[i].ip == server.Addr() {
			targets[i].what += ", the server's own address"
			targets[i].own, own = true, true
		}
	}
	if !own {
		targets = append(targets, target{server.Addr(), "the server's own address", true})
	}
	var allowed, refused []string
	for _, t := range targets {
		cx, cancel := context.WithTimeout(ctx, c.Timeout)
		err := a.CreatePermission(cx, t.ip)
		cancel()
		if err != nil {
			se, ok := errors.AsType[*stun.Error](err)
			if !ok {
				return "", Explain(err, server)
			}
			refused = append(refused, fmt.Sprintf("%s (%d)", t.ip, se.Code))
			continue
		}
		if t.own && cfg.Transport == turnclient.UDP && !relaysToItself(ctx, a, server) {
			if !t.ip.IsLoopback() && !t.ip.IsPrivate() {
				refused = append(refused, fmt.Sprintf("%s (permitted, but datagrams to port %d dropped)", t.ip, server.Port()))
				continue
			}
			// A loopback or private address is still a risk for other
			// services on that host.
			allowed = append(allowed, t.ip.String())
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("relaying to %s (%s) is ALLOWED (only the server's own port %d is dropped): an SSRF risk for other services there", t.ip, t.what, server.Port()))
			continue
		}
		allowed = append(allowed, t.ip.String())
		what := t.what
		if t.own && cfg.Transport == turnclient.UDP {
			what += "; a Binding request sent to its port through the relay was answered"
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("relaying to %s (%s) is ALLOWED: an SSRF risk", t.ip, what))
	}
	return fmt.Sprintf("%d of %d refused (%s); allowed: %s", len(refused), len(targets),
		strings.Join(refused, ", "), orNone(allowed)), nil
}

// relaysToItself sends a STUN Binding request through relay a to the
// server's own address and reports whether the answer came back (the
// server relays to its own listener), waiting at most a second.
func relaysToItself(ctx context.Context, a *turnclient.Relay, server netip.AddrPort) bool {
	req, id := bindingProbe()
	if _, err := a.WriteTo(req, net.UDPAddrFromAddrPort(server)); err != nil {
		return false
	}
	deadline := time.Now().Add(time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	a.SetReadDeadline(deadline)
	defer a.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for {
		n, _, err := a.ReadFrom(buf)
		if err != nil {
			return false
		}
		var m stun.Message
		if m.Parse(buf[:n]) == nil && m.TransactionID == id {
			return true
		}
	}
}

// bindingProbe returns a Binding request and its transaction ID.
func bindingProbe() ([]byte, stun.TransactionID) {
	id := stun.NewTransactionID()
	return stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingRequest, id)), id
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
