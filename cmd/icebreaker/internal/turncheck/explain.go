package turncheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// errForbiddenPeer is the explanation of a 403 to a permission.
var errForbiddenPeer = errors.New("the server forbids relaying to this peer")

// forbiddenHint says how to get past a 403 when the peer was the
// server's own relayed address (no --peer) or the given --peer.
func forbiddenHint(peerGiven bool) string {
	if peerGiven {
		return "the server's relay policy denies that peer; on an icebreaker server allow its range with --allow-peer CIDR (turn.policy.allow_peers)"
	}
	return "the server's relay policy denies its own relayed address (by default loopback and private ranges are denied); " +
		"on an icebreaker server allow that range with --allow-peer CIDR (turn.policy.allow_peers), or give --peer IP:PORT of a UDP echo server the relay may reach"
}

// WithForbiddenHint adds forbiddenHint to an explained 403.
func WithForbiddenHint(err error, peerGiven bool) error {
	if errors.Is(err, errForbiddenPeer) {
		return fmt.Errorf("%w: %s", err, forbiddenHint(peerGiven))
	}
	return err
}

// Explain says in plain words what went wrong.
func Explain(err error, server netip.AddrPort) error {
	var te *stunclient.TimeoutError
	var ae *stunclient.AlternateServerError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	se, isSTUN := errors.AsType[*stun.Error](err)
	switch {
	case errors.Is(err, stunclient.ErrNoCredentials):
		return errors.New("the server requires credentials (401): give --user and --pass, or --secret")
	case errors.As(err, &te):
		return fmt.Errorf("no reply from %s after %s (%s): the server is down, the port is wrong, or a firewall drops the traffic",
			te.Server, stunclient.FormatDuration(te.Waited), plural(te.Attempts, "attempt"))
	case errors.As(err, &ce), errors.As(err, &ue), errors.As(err, &he):
		return fmt.Errorf("the server's TLS certificate was not accepted (%v); use --ca FILE, or --insecure to skip the check", err)
	case errors.As(err, &ae):
		return fmt.Errorf("the server redirects to another server (300 ALTERNATE-SERVER): %v", err)
	case errors.Is(err, turnclient.ErrQuotaReached):
		return errors.New("the server's allocation quota for this user is reached (486)")
	case errors.Is(err, turnclient.ErrInsufficientCapacity):
		return errors.New("the server is out of capacity (508)")
	case errors.Is(err, turnclient.ErrForbidden):
		if isSTUN && se.Reason != "" {
			return fmt.Errorf("%w (403 %s)", errForbiddenPeer, se.Reason)
		}
		return fmt.Errorf("%w (403)", errForbiddenPeer)
	case isSTUN && se.Code == stun.CodeUnauthorized:
		return errors.New("the server rejected the credentials (401)")
	case isSTUN && se.Code == stun.CodeStaleNonce:
		return errors.New("the server kept answering stale nonce (438): its nonces expire too fast or its clock is wrong")
	case isSTUN:
		return fmt.Errorf("the server answered with error %d %s", se.Code, se.Reason)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no reply in time from %s", server)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("cannot connect to %s: %v", server, oe.Err)
	}
	return err
}

// plural returns "1 attempt", "2 attempts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
