package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/policy"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// Reloading the configuration of a running `icebreaker serve` (SIGHUP or
// `icebreaker reload`): the file and the environment are read again with
// the same flags on top, validated, and what can change without a
// restart is applied; the listeners and every allocation stay.

// initNonceSecret fixes the key of the stateless nonces for the life of
// the process: turn.nonce_secret, or a random one when it is empty, so
// that a reload does not make every client's nonce stale.
func (t *turnRelay) initNonceSecret() error {
	if t.cfg.NonceSecret != "" {
		t.nonceSecret = []byte(t.cfg.NonceSecret)
		return nil
	}
	t.nonceSecret = make([]byte, 32)
	_, err := rand.Read(t.nonceSecret)
	return err
}

// newAuth builds the authenticator of tc: its realm, static users, the
// user store and REST secrets.
func (t *turnRelay) newAuth(tc config.TURN) (*turnauth.Authenticator, error) {
	return turnauth.New(turnauth.Config{
		Realm:       tc.Realm,
		Users:       t.users(tc),
		RESTSecrets: tc.RESTSecrets,
		NonceSecret: t.nonceSecret,
		NonceTTL:    tc.NonceTTL,
	})
}

// newPolicy builds the peer policy of tc, with the server's own addresses
// (known once the listeners are up).
func (t *turnRelay) newPolicy(tc config.TURN) (*policy.Policy, error) {
	p, err := policy.New(policy.Config{Allow: tc.Policy.AllowPrefixes(), Deny: tc.Policy.DenyPrefixes(), LocalAddrs: t.ifaddrs})
	if err != nil {
		return nil, err
	}
	if t.own != nil {
		p.SetOwn(t.own)
	}
	return p, nil
}

// turnQuotas converts the configured quotas into turnserver's terms
// (0, unlimited in the configuration, is -1 there); the descriptor budget
// depends on the listeners too.
func turnQuotas(cfg config.Config) turnserver.Quotas {
	q := cfg.TURN.Quotas
	perAlloc, perUser := q.Bandwidth()
	unlimited := func(n int) int {
		if n == 0 {
			return -1 // unlimited in turnserver's terms
		}
		return n
	}
	return turnserver.Quotas{
		AllocationsPerUser:          unlimited(q.AllocationsPerUser),
		TotalAllocations:            q.TotalAllocations,
		BandwidthPerAllocation:      perAlloc,
		BandwidthPerUser:            perUser,
		PermissionsPerAllocation:    unlimited(q.PermissionsPerAllocation),
		ConnectsPerAllocation:       unlimited(q.ConnectsPerAllocation),
		ConnectsPerUser:             unlimited(q.ConnectsPerUser),
		TCPConnectionsPerAllocation: unlimited(q.TCPConnectionsPerAllocation),
		Descriptors:                 descriptorBudget(cfg),
	}
}

// reload applies the reloadable part of next (a validated configuration
// whose restart-only keys the caller has kept): users, REST secrets, the
// policy and the quotas. It returns what it did, for the log.
func (t *turnRelay) reload(ctx context.Context, next config.TURN, quotas turnserver.Quotas) ([]any, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	auth, err := t.newAuth(next)
	if err != nil {
		return nil, err
	}
	pol, err := t.newPolicy(next)
	if err != nil {
		return nil, err
	}
	if err := t.server.SetQuotas(quotas); err != nil {
		return nil, err
	}
	t.server.SetAuth(auth)
	removed := t.server.SetPolicy(pol)
	t.policy = pol
	users := t.users(next)
	revoked := t.server.RevokeUsers(func(username string) bool {
		if _, err := users.Key(ctx, username, next.Realm, stun.PasswordMD5); !errors.Is(err, turnauth.ErrUnknownUser) {
			return true
		}
		_, _, rest := turn.ParseRESTUsername(username)
		return rest && len(next.RESTSecrets) > 0
	})
	t.cfg.Users, t.cfg.RESTSecrets, t.cfg.Policy, t.cfg.Quotas = next.Users, next.RESTSecrets, next.Policy, next.Quotas
	t.mintSecret.Set(firstSecret(next))
	return []any{"static_users", len(next.Users), "rest_secrets", len(next.RESTSecrets),
		"permissions_removed", removed, "allocations_revoked", revoked}, nil
}

// reloader re-reads the configuration of a running server and applies
// it. Its methods are called from serve's control loop, one at a time.
type reloader struct {
	load   func() (config.Config, error) // the file, environment and flags, validated
	cur    config.Config
	level  *slog.LevelVar
	logger *slog.Logger
	tr     *turnRelay  // nil when TURN is off
	certs  *certLoader // nil without TLS
}

// reload reads and applies the configuration. An invalid one is refused
// whole, with the error naming the file, line and key, and the running
// configuration stays. Keys that need a restart keep their running value;
// it returns them, and the log says which.
func (r *reloader) reload(ctx context.Context) (restart []string, err error) {
	next, err := r.load()
	if err != nil {
		r.logger.Error("reload refused: the running configuration stays", "err", err)
		return nil, err
	}
	restart = r.cur.ReloadChanges(next)
	if next.TURN.Enabled && r.tr != nil {
		qc := r.cur // the quotas of next on the listeners that run
		qc.TURN.Quotas = next.TURN.Quotas
		turnArgs, err := r.tr.reload(ctx, next.TURN, turnQuotas(qc))
		if err != nil {
			err = fmt.Errorf("turn: %w", err)
			r.logger.Error("reload refused: the running configuration stays", "err", err)
			return nil, err
		}
		r.logger.Info("reload: TURN users, REST secrets, policy and quotas applied", turnArgs...)
	}
	if r.certs != nil && next.TLS.Enabled() {
		if err := r.certs.setFiles(next.TLS.Cert, next.TLS.Key); err != nil {
			r.logger.Error("reload: TLS certificate not loaded, the old one stays", "err", err)
		}
	}
	r.level.Set(next.Log.SlogLevel())
	applied := r.cur
	applied.TURN.Users, applied.TURN.RESTSecrets = next.TURN.Users, next.TURN.RESTSecrets
	applied.TURN.Policy, applied.TURN.Quotas = next.TURN.Policy, next.TURN.Quotas
	applied.Log.Level, applied.TLS.Cert, applied.TLS.Key = next.Log.Level, next.TLS.Cert, next.TLS.Key
	applied.Drain = next.Drain
	r.cur = applied
	if len(restart) > 0 {
		r.logger.Warn("reload: these keys changed but need a restart; their running values stay", "keys", strings.Join(restart, ", "))
	}
	r.logger.Info("configuration reloaded", "log_level", next.Log.Level)
	return restart, nil
}

// bannerWarn returns how the startup banner reports a problem: a
// "warning:" line among the banner's, or with log.format json a Warn
// record, so that a JSON log pipeline sees it.
func bannerWarn(c config.Log, logger *slog.Logger, w io.Writer) func(string) {
	if c.Format == "json" {
		return func(msg string) { logger.Warn(msg) }
	}
	return func(msg string) {
		head, rest, ok := strings.Cut(msg, ": ")
		if !ok {
			fmt.Fprintln(w, "warning: "+msg)
			return
		}
		fmt.Fprintf(w, "%s: warning: %s\n", head, rest)
	}
}

// warnRelayDenied warns when the policy denies relaying to the server's
// own advertised relay addresses: then two clients that both relay
// through this server (ICE with two symmetric NATs) cannot reach each
// other, and says which setting fixes it.
func (t *turnRelay) warnRelayDenied(warn func(string)) {
	lo, _ := t.cfg.PortRange()
	for f, pub := range t.public {
		if !pub.IsValid() {
			continue
		}
		if err := t.policy.Check(netip.AddrPortFrom(pub, lo)); err == nil {
			continue
		}
		fix := fmt.Sprintf("allow it with turn.policy.allow_peers: [%q] (--allow-peer %s)", netip.PrefixFrom(pub, pub.BitLen()), netip.PrefixFrom(pub, pub.BitLen()))
		if t.public[f] == t.relay[f] && (pub.IsPrivate() || pub.IsLoopback()) {
			fix = "set turn.external_ip (--external-ip) to the public address clients reach, or " + fix
		}
		warn(fmt.Sprintf("TURN: the relay address %v is in a range the relay policy denies, so two clients relayed by this server cannot reach each other; %s", pub, fix))
	}
}
