package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
)

// runForward forwards TCP connections to the peer: the side with --listen
// accepts connections and sends each over its own QUIC stream; the side
// with --to connects each stream to the address it names itself (the
// listening side never chooses where). As with pipe, the side without
// CODE allocates one (or takes --code) and dials. It runs until
// interrupted or the peer goes away.
func runForward(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o wormholeOptions
	var po peerOptions
	fs := newPeerFlagSet("forward", stderr, &o, &po)
	code := fs.String("code", "", "use this `CODE` instead of allocating one")
	listen := fs.String("listen", "", "accept TCP connections on `ADDR` (host:port) and forward them to the peer")
	to := fs.String("to", "", "connect the peer's forwarded connections to `ADDR` (host:port)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker forward --listen ADDR|--to ADDR [flags] [CODE]")
		fmt.Fprintln(stderr, "One side listens, the other connects; each TCP connection is one QUIC stream.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := oneCode(pos, *code); err != nil {
		return err
	}
	switch {
	case (*listen == "") == (*to == ""):
		return fmt.Errorf("%w: give exactly one of --listen and --to", errUsage)
	case o.json:
		return fmt.Errorf("%w: forward has no --json", errUsage)
	}
	for _, a := range []string{*listen, *to} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if err := po.check(); err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	var ln net.Listener
	if *listen != "" {
		// Listen first, so that a busy port fails before the peer waits.
		if ln, err = net.Listen("tcp", *listen); err != nil {
			return err
		}
		defer ln.Close()
	}
	w, dialer, err := openPeerWormhole(ctx, cfg, pos, *code)
	if err != nil {
		return err
	}
	if dialer {
		other := "--listen ADDR"
		if ln != nil {
			other = "--to ADDR"
		}
		announce(w, &o, stderr, stderr, "icebreaker forward "+other+" "+w.Code().String())
	}
	c, err := connectPeer(ctx, w, &o, &po, dialer, stderr)
	if err != nil {
		return closeWormhole(w, err, stderr)
	}
	defer c.Close()
	if ln != nil {
		fmt.Fprintf(stderr, "forwarding connections to %s to the peer\n", ln.Addr())
		err = forwardListen(ctx, c, ln, stderr)
	} else {
		fmt.Fprintf(stderr, "forwarding the peer's connections to %s\n", *to)
		err = forwardTo(ctx, c, *to, stderr)
	}
	if ctx.Err() != nil {
		err = nil // interrupted: the normal end
	}
	return closeWormhole(w, err, stderr)
}

// forwardListen accepts TCP connections until ctx ends or the peer goes
// away, and splices each with a new stream.
func forwardListen(ctx context.Context, c *peer.Conn, ln net.Listener, stderr io.Writer) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	done := make(chan struct{})
	defer close(done)
	wg.Go(func() { // the peer going away ends the loop too
		select {
		case <-c.Closed():
			ln.Close()
		case <-done:
		}
	})
	for {
		tc, err := ln.Accept()
		if err != nil {
			select {
			case <-c.Closed():
				return errors.New("the peer closed the connection")
			default:
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		wg.Go(func() {
			defer tc.Close()
			s, err := c.OpenPipe(ctx, peer.KindForward)
			if err != nil {
				fmt.Fprintf(stderr, "forward %s: %v\n", tc.RemoteAddr(), err)
				return
			}
			if _, _, err := peer.Pipe(ctx, s, tc, tc); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "forward %s: %v\n", tc.RemoteAddr(), err)
			}
		})
	}
}

// forwardTo connects each stream the peer opens to addr, until ctx ends or
// the peer goes away.
func forwardTo(ctx context.Context, c *peer.Conn, addr string, stderr io.Writer) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		in, err := c.ReceiveOffer(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, peer.ErrPeerClosed) {
				return nil // the listening side ended the session
			}
			select {
			case <-c.Closed():
				return nil // the listening side ended the session
			default:
			}
			return err
		}
		wg.Go(func() {
			d := net.Dialer{Timeout: 10 * time.Second}
			tc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				fmt.Fprintf(stderr, "forward to %s: %v\n", addr, err)
				_ = in.Decline("cannot connect to the target")
				return
			}
			defer tc.Close()
			s, err := in.AcceptPipe(peer.KindForward)
			if err != nil {
				_ = in.Decline(err.Error())
				return
			}
			if _, _, err := peer.Pipe(ctx, s, tc, tc); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "forward to %s: %v\n", addr, err)
			}
		})
	}
}
