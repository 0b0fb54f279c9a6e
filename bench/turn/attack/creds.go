package main

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// restProbe is what the REST credential probes got (issue 13, item 8,
// and issue 11's call that outlives its credential).
type restProbe struct {
	strangerExpired, strangerUnknown string // reason phrases of the 401s
	holderExpired                    string
	refreshAfter, permitAfter        int // codes after the credential expired
}

// probeREST sends Allocates with an expired REST username signed with a
// guessed secret and with an unknown plain user (a stranger must not tell
// them apart), one with an expired credential signed with the real
// secret, then allocates with a credential valid for life and keeps the
// allocation going after it expired.
func probeREST(t target, secret string, life time.Duration) (restProbe, error) {
	var p restProbe
	reason := func(user, pass string) (string, error) {
		c, err := t.dial()
		if err != nil {
			return "", err
		}
		defer c.close()
		c.kr.Creds = turnload.Creds{Username: user, Password: pass}
		r, err := turnload.Do(c.conn, stun.MethodAllocate, turnload.AppendAllocate, &c.auth, &c.kr)
		if err == nil {
			return "success", nil
		}
		return fmt.Sprintf("%d %s", r.Code, r.Reason), nil
	}
	var err error
	u, pw := turn.RESTCredentials("guessed", "carol", time.Now().Add(-time.Hour))
	if p.strangerExpired, err = reason(u, pw); err != nil {
		return p, err
	}
	if p.strangerUnknown, err = reason("nobody-by-this-name", "x"); err != nil {
		return p, err
	}
	u, pw = turn.RESTCredentials(secret, "carol", time.Now().Add(-time.Hour))
	if p.holderExpired, err = reason(u, pw); err != nil {
		return p, err
	}
	c, err := t.dial()
	if err != nil {
		return p, err
	}
	defer c.close()
	expiry := time.Now().Add(life + time.Second).Truncate(time.Second) // whole seconds, at least life
	u, pw = turn.RESTCredentials(secret, "carol", expiry)
	c.kr.Creds = turnload.Creds{Username: u, Password: pw}
	if r, code, err := c.do(stun.MethodAllocate, turnload.AppendAllocate); err != nil || code != 0 {
		return p, fmt.Errorf("allocate with a valid REST credential: %d %s: %v", code, r.Reason, err)
	}
	time.Sleep(time.Until(expiry) + 500*time.Millisecond)
	if _, p.refreshAfter, err = c.do(stun.MethodRefresh, turnload.AppendRefresh); err != nil {
		return p, err
	}
	peer := netip.MustParseAddrPort("127.5.0.1:9")
	_, p.permitAfter, err = c.do(stun.MethodCreatePermission, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
		return turnload.AppendCreatePermission(b, id, peer, a)
	})
	return p, err
}

// probeOwn asks for permissions (which send nothing) to the server's own
// listeners: its listen ports on its advertised external address, and
// the metrics endpoint (issue 13, item 5). It returns the code of each.
func probeOwn(t target, external netip.Addr, metrics netip.AddrPort) (map[netip.AddrPort]int, error) {
	c, err := t.dial()
	if err != nil {
		return nil, err
	}
	defer c.close()
	if _, code, err := c.do(stun.MethodAllocate, turnload.AppendAllocate); err != nil || code != 0 {
		return nil, fmt.Errorf("allocate: code %d: %v", code, err)
	}
	out := map[netip.AddrPort]int{}
	targets := []netip.AddrPort{netip.AddrPortFrom(external, t.server.Port()), netip.AddrPortFrom(external, t.tcpServer.Port())}
	if metrics.IsValid() {
		targets = append(targets, metrics, netip.AddrPortFrom(external, metrics.Port()))
	}
	for _, p := range targets {
		_, code, err := c.do(stun.MethodCreatePermission, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendCreatePermission(b, id, p, a)
		})
		if err != nil {
			return out, err
		}
		out[p] = code
	}
	return out, nil
}
