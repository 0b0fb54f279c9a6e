package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/internal/icepage"
	"github.com/icebreaker-net/icebreaker/internal/iceservers"
	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/wormhole/mailbox"
	"github.com/icebreaker-net/icebreaker/wormhole/transitrelay"
)

// testPageUser names the ICE test page's credentials in the TURN usage
// records.
const testPageUser = "ice-test-page"

// rendezvous is the magic-wormhole half of `icebreaker serve`: the mailbox
// server on its ws:// (and wss://) listeners and the transit relay.
type rendezvous struct {
	mailbox   *mailbox.Server
	relay     *transitrelay.Relay // nil when transit_listen is off
	lns       []net.Listener      // the mailbox's: ws, then wss
	transitLn net.Listener
	endpoints []stunserver.Endpoint // what it listens on, for the banner and the relay policy
	testPage  bool                  // the ICE test page is on the ws and wss listeners
}

// newRendezvous opens the database and the listeners of a validated
// configuration's rendezvous; it returns nil when the rendezvous is off.
// eps are the STUN/TURN endpoints, whose ports go in the ICE servers;
// secret is the TURN relay's signing secret (nil when TURN is off).
func newRendezvous(cfg config.Config, eps []stunserver.Endpoint, secret *iceservers.Secret, logger *slog.Logger) (*rendezvous, error) {
	wsAddr, wssAddr, transitAddr := cfg.RendezvousAddrs()
	if !wsAddr.IsValid() {
		return nil, nil
	}
	r := &cfg.Rendezvous
	db := r.DB
	switch db {
	case config.NoUserDB:
		db = ""
	case "":
		p, err := userstore.DefaultPath()
		if err != nil {
			return nil, fmt.Errorf("rendezvous.db: %w", err)
		}
		db = filepath.Join(filepath.Dir(p), "rendezvous.db")
	}
	l := r.Limits
	mcfg := mailbox.Config{
		DBPath: db, MOTD: r.MOTD, Disabled: r.Disabled, ClientIPHeader: r.ClientIPHeader,
		MaxMessageSize: l.MessageSize, MaxMessages: l.MessagesPerMailbox, MaxMailboxBytes: l.MailboxBytes,
		MaxMailboxes: l.Mailboxes, MailboxesPerIP: l.MailboxesPerIP, ConnsPerIP: l.ConnsPerIP,
		Rate: float64(l.Rate), Burst: l.Burst, PruneAfter: l.PruneAfter,
		Commands: map[string]mailbox.CommandFunc{iceservers.Command: iceServersFunc(cfg, eps, secret)},
		Logger:   logger,
	}
	rv := &rendezvous{}
	if r.TestPage.Enabled {
		mint, why := iceServersMint(cfg, eps, secret)
		if why != "" { // Validate refuses this
			return nil, errors.New("rendezvous.test_page: " + why)
		}
		page, err := icepage.New(icepage.Config{Token: r.TestPage.Token, Mint: mint, User: testPageUser})
		if err != nil {
			return nil, err
		}
		mcfg.HTTP, rv.testPage = page, true
	}
	var err error
	if rv.mailbox, err = mailbox.New(mcfg); err != nil {
		return nil, fmt.Errorf("rendezvous: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			rv.close()
		}
	}()
	listen := func(key string, ap netip.AddrPort, network string) (net.Listener, error) {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, listenError(err, "choose another with --"+strings.TrimPrefix(key, "rendezvous.")+", or turn it off with \"off\""))
		}
		bound := ln.Addr().(*net.TCPAddr).AddrPort()
		rv.endpoints = append(rv.endpoints, stunserver.Endpoint{Network: network, Addr: netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())})
		return ln, nil
	}
	ln, err := listen("rendezvous.listen", wsAddr, "ws")
	if err != nil {
		return nil, err
	}
	rv.lns = append(rv.lns, ln)
	if wssAddr.IsValid() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate (tls.cert, tls.key): %w", err)
		}
		ln, err := listen("rendezvous.tls_listen", wssAddr, "wss")
		if err != nil {
			return nil, err
		}
		rv.lns = append(rv.lns, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	if transitAddr.IsValid() {
		t := r.Transit
		if rv.relay, err = transitrelay.New(transitrelay.Config{MaxWait: t.MaxWait, MaxBytes: int64(t.BytesPerPair),
			MaxDuration: t.MaxDuration, ConnsPerIP: t.ConnsPerIP, Logger: logger}); err != nil {
			return nil, err
		}
		if rv.transitLn, err = listen("rendezvous.transit_listen", transitAddr, "transit"); err != nil {
			return nil, err
		}
	}
	ok = true
	return rv, nil
}

// run serves the mailbox and the transit relay until ctx is done.
func (rv *rendezvous) run(ctx context.Context) error {
	errs := make(chan error, 2)
	go func() { errs <- rv.mailbox.Serve(ctx, rv.lns...) }()
	n := 1
	if rv.relay != nil {
		n++
		go func() { errs <- rv.relay.Serve(ctx, rv.transitLn) }()
	}
	var err error
	for range n {
		err = errors.Join(err, <-errs)
	}
	return err
}

// close closes what run did not start or has left: listeners, database.
func (rv *rendezvous) close() error {
	for _, ln := range rv.lns {
		ln.Close()
	}
	if rv.transitLn != nil {
		rv.transitLn.Close()
	}
	return rv.mailbox.Close()
}

// iceServersMint returns what this server offers ICE clients: the STUN
// and TURN ports of eps and the TURN relay's signing secret (the first
// REST secret, which a reload may rotate), or why it offers nothing.
func iceServersMint(cfg config.Config, eps []stunserver.Endpoint, secret *iceservers.Secret) (iceservers.Config, string) {
	if secret == nil || !cfg.TURN.Enabled || len(cfg.TURN.RESTSecrets) == 0 {
		return iceservers.Config{}, "it has no TURN REST secret"
	}
	mint := iceservers.Config{Rotating: secret, TTL: cfg.Rendezvous.ICEServers.TTL, PublicHost: cfg.Rendezvous.PublicHost}
	for _, ep := range eps {
		switch {
		case ep.Network == "udp" && mint.UDPPort == 0:
			mint.UDPPort = ep.Addr.Port()
		case ep.Network == "tcp" && mint.TCPPort == 0:
			mint.TCPPort = ep.Addr.Port()
		case ep.Network == "tls" && mint.TLSPort == 0:
			mint.TLSPort = ep.Addr.Port()
		}
	}
	return mint, ""
}

// iceServersFunc answers icebreaker-ice-servers: the STUN and TURN URIs of
// this server, with TURN REST credentials minted by iceservers, or an
// error when the server offers none.
func iceServersFunc(cfg config.Config, eps []stunserver.Endpoint, secret *iceservers.Secret) mailbox.CommandFunc {
	ic := cfg.Rendezvous.ICEServers
	mint, why := iceServersMint(cfg, eps, secret)
	if !ic.Enabled {
		why = "rendezvous.ice_servers.enabled is false"
	}
	if why != "" {
		err := errors.New("this server does not hand out ICE servers (" + why + ")")
		return func(context.Context, mailbox.Request) (any, error) { return nil, err }
	}
	mint.Token = ic.Token
	return func(_ context.Context, r mailbox.Request) (any, error) {
		user := ""
		if len(r.Side) <= 32 && strings.Trim(r.Side, "0123456789abcdef") == "" {
			user = r.Side // names the side in the TURN usage records
		}
		reply, err := mint.MintReply(r.Host, r.Token, user, time.Now())
		if err != nil {
			return nil, fmt.Errorf("no ICE servers: %w", err)
		}
		return reply, nil
	}
}
