package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/portmap"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// peerOptions are the flags of send, receive and pipe that choose how two
// icebreaker peers connect (package peer): the candidates and servers.
type peerOptions struct {
	gather  iceOptions
	secrets gatherSecrets
	noRelay bool
	token   string
	connect time.Duration
	verbose bool
}

// newPeerFlagSet returns the flag set of a command that talks to a peer
// through a wormhole, with o's and po's flags registered.
func newPeerFlagSet(name string, stderr io.Writer, o *wormholeOptions, po *peerOptions) *flag.FlagSet {
	fs := newFlagSet(name, stderr)
	o.register(fs)
	po.register(fs)
	return fs
}

func (o *peerOptions) register(fs *flag.FlagSet) {
	o.secrets = o.gather.registerGather(fs)
	fs.BoolVar(&o.gather.noPortmap, "no-portmap", false, "do not ask the router for a port mapping (PCP, NAT-PMP, UPnP IGD)")
	fs.DurationVar(&o.gather.pmTimeout, "portmap-timeout", portmap.DefaultTimeout, "how long gathering waits for the router's port mapping")
	fs.BoolVar(&o.noRelay, "no-relay", false, "never relay through a TURN server (direct paths only)")
	fs.StringVar(&o.token, "ice-token", "", "token for an icebreaker rendezvous that hands out ICE servers only to holders")
	fs.DurationVar(&o.connect, "connect-timeout", peer.DefaultConnectTimeout, "give up when no path to the peer works after this long")
	fs.BoolVar(&o.verbose, "v", false, "log the ICE agent's and QUIC's progress to standard error")
}

func (o *peerOptions) check() error {
	switch {
	case o.noRelay && o.gather.relayOnly:
		return fmt.Errorf("%w: --no-relay and --relay-only exclude each other", errUsage)
	case o.noRelay && len(o.gather.turn) > 0:
		return fmt.Errorf("%w: --no-relay and --turn exclude each other", errUsage)
	case o.connect <= 0:
		return fmt.Errorf("%w: --connect-timeout must be positive", errUsage)
	case o.gather.pmTimeout <= 0:
		return fmt.Errorf("%w: --portmap-timeout must be positive", errUsage)
	}
	return o.gather.checkGather(o.secrets)
}

// config returns the peer configuration: the candidates of the flags and
// the STUN and TURN servers of --stun and --turn, or, when neither is
// given, those the rendezvous hands out (an icebreaker mailbox server
// does; a plain one does not, and then only host candidates remain).
func (o *peerOptions) config(ctx context.Context, w *wormhole.Wormhole, stderr io.Writer) (peer.Config, error) {
	cfg := peer.Config{ConnectTimeout: o.connect}
	if o.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	relayOnly := o.gather.relayOnly
	o.gather.relayOnly = false // checked below, once the servers are known
	gc, err := o.gather.gatherConfig(ctx)
	o.gather.relayOnly = relayOnly
	if err != nil {
		return cfg, err
	}
	if len(o.gather.stun) == 0 && len(o.gather.turn) == 0 {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		servers, ttl, err := w.ICEServers(ictx, o.token)
		cancel()
		switch {
		case errors.Is(err, wormhole.ErrICENotOffered):
			if o.verbose {
				fmt.Fprintln(stderr, "the rendezvous hands out no ICE servers:", err)
			}
		case err != nil:
			return cfg, err
		default:
			if err := peer.AddServers(ctx, &gc, servers, resolver); err != nil {
				fmt.Fprintln(stderr, "warning: skipping some ICE servers of the rendezvous:", err)
			}
			if o.verbose {
				fmt.Fprintf(stderr, "the rendezvous hands out %d STUN and %d TURN servers (credentials for %v)\n",
					len(gc.STUNServers), len(gc.TURNServers), ttl)
			}
		}
	}
	if o.noRelay {
		gc.TURNServers = nil
	}
	if relayOnly {
		if len(gc.TURNServers) == 0 {
			return cfg, errors.New("--relay-only: no TURN server (neither --turn nor the rendezvous gives one)")
		}
		gc.RelayOnly, gc.STUNServers, gc.PortMapper = true, nil, nil
	}
	cfg.Gather = gc
	return cfg, nil
}

// pathEvent is the path of c as a --json event (or its fields).
func pathEvent(c *peer.Conn, event string) map[string]any {
	ev := pathFields(c.Path(), event)
	ev["connect_ms"] = ms(c.ConnectTime())
	return ev
}

// pathFields is p as a --json event.
func pathFields(p peer.Path, event string) map[string]any {
	return map[string]any{
		"event": event, "path": p.Kind(),
		"local_type": p.LocalType, "local_addr": p.LocalAddr,
		"remote_type": p.RemoteType, "remote_addr": p.RemoteAddr,
		"rtt_ms": ms(p.RTT),
	}
}

// ms is d in milliseconds, for JSON.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportPath prints the path once connected.
func reportPath(o *wormholeOptions, c *peer.Conn, stdout io.Writer) {
	o.output(stdout, pathEvent(c, "path"), fmt.Sprintf("Connected in %.0f ms: %v", ms(c.ConnectTime()), c.Path()))
}

// failEvent prints err as a --json error event.
func failEvent(o *wormholeOptions, stdout io.Writer, err error) error {
	if err != nil && o.json && !errors.Is(err, errUsage) && !errors.Is(err, flag.ErrHelp) {
		o.output(stdout, map[string]any{"event": "error", "error": err.Error()}, "")
	}
	return err
}

// stdinIsTerminal reports whether standard input is a terminal, where
// receive may ask before accepting a file; tests replace it.
var stdinIsTerminal = func() bool { return hasTermios(os.Stdin) }
