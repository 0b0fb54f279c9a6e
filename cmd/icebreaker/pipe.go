package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
	"github.com/quic-go/quic-go"
)

// pipeStdin is what pipe sends; tests replace it.
var pipeStdin io.Reader = os.Stdin

// pipeLinger bounds how long the accepting side of pipe (and the sender
// of a file) waits, once its part is done, for the peer to close the
// connection.
const pipeLinger = 10 * time.Second

// runPipe connects standard input and output to the peer's, both ways,
// over ICE and QUIC, until EOF on both sides. The side without CODE
// allocates one (or takes --code) and dials; the side with CODE accepts.
// Messages go to standard error: standard output is the data.
func runPipe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o wormholeOptions
	var po peerOptions
	fs := newPeerFlagSet("pipe", stderr, &o, &po)
	code := fs.String("code", "", "use this `CODE` instead of allocating one (the peer runs 'icebreaker pipe CODE')")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker pipe [flags]          allocate a code (or take --code) and wait for the peer")
		fmt.Fprintln(stderr, "       icebreaker pipe [flags] CODE     join the peer's code")
		fmt.Fprintln(stderr, "Standard input goes to the peer's standard output, both ways, until EOF on both sides.")
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
	case o.json:
		return fmt.Errorf("%w: pipe has no --json: standard output is the data", errUsage)
	}
	if err := po.check(); err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	w, dialer, err := openPeerWormhole(ctx, cfg, pos, *code)
	if err != nil {
		return err
	}
	if dialer {
		announce(w, &o, stderr, stderr, "icebreaker pipe "+w.Code().String())
	}
	return closeWormhole(w, pipe(ctx, w, &o, &po, dialer, stdout, stderr), stderr)
}

// oneCode checks that the code comes once: as --code or as the one
// argument, or not at all (then it is allocated).
func oneCode(pos []string, code string) error {
	if len(pos) > 1 || len(pos) == 1 && code != "" {
		return fmt.Errorf("%w: one code only: --code CODE or CODE (got %q)", errUsage, pos)
	}
	return nil
}

// openPeerWormhole joins the code of pos (the accepting side) or --code, or
// allocates one; the side without CODE is the dialing one.
func openPeerWormhole(ctx context.Context, cfg wormhole.Config, pos []string, code string) (*wormhole.Wormhole, bool, error) {
	var w *wormhole.Wormhole
	var err error
	switch {
	case len(pos) == 1:
		if _, err := wormhole.ParseCode(pos[0]); err != nil {
			return nil, false, fmt.Errorf("%w: %v", errUsage, err)
		}
		w, err = wormhole.Join(ctx, cfg, pos[0])
	case code != "":
		if _, err := wormhole.ParseCode(code); err != nil {
			return nil, false, fmt.Errorf("%w: --code: %v", errUsage, err)
		}
		w, err = wormhole.Join(ctx, cfg, code)
	default:
		w, err = wormhole.Allocate(ctx, cfg)
	}
	return w, len(pos) == 0, err
}

// connectPeer connects to an icebreaker peer over ICE and QUIC once both
// sides' versions say they can, and prints the path on stderr.
func connectPeer(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, dialer bool, stderr io.Writer) (*peer.Conn, error) {
	if err := o.showVerifier(ctx, w, stderr); err != nil {
		return nil, err
	}
	versions, err := w.PeerAppVersions(ctx)
	if err != nil {
		return nil, err
	}
	if !peer.Supported(versions) {
		return nil, errors.New("the peer is not an icebreaker peer (a plain magic-wormhole client cannot do this)")
	}
	cfg, err := po.config(ctx, w, stderr)
	if err != nil {
		return nil, err
	}
	var c *peer.Conn
	if dialer {
		c, err = peer.Dial(ctx, w, cfg)
	} else {
		c, err = peer.Accept(ctx, w, cfg, nil)
	}
	if err != nil {
		return nil, err
	}
	reportPath(o, c, stderr)
	return c, nil
}

func pipe(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, dialer bool, stdout, stderr io.Writer) error {
	c, err := connectPeer(ctx, w, o, po, dialer, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	var s *quic.Stream
	if dialer {
		s, err = c.OpenPipe(ctx, peer.KindPipe)
	} else {
		var in *peer.Incoming
		if in, err = c.ReceiveOffer(ctx); err == nil {
			if s, err = in.AcceptPipe(peer.KindPipe); err != nil {
				_ = in.Decline(err.Error())
			}
		}
	}
	if err != nil {
		return err
	}
	// How the two sides end without cutting off the end of either
	// direction (closing a QUIC connection drops what is still in
	// flight): the accepting side sends its end of data (FIN) only once
	// the dialing side's has arrived, so when the dialing side has the
	// accepting side's end, both directions are complete at both ends;
	// then the dialing side closes the connection, which the accepting
	// side waits for (closeAfterPeer).
	in, out := pipeStdin, stdout
	if !dialer {
		o := &endSignal{Writer: stdout, done: make(chan struct{})}
		in, out = &endAfter{r: in, stop: ctx.Done(), done: o.done}, o
	}
	start := time.Now()
	sent, received, err := peer.Pipe(ctx, s, in, out)
	if err != nil {
		return err
	}
	took, path := time.Since(start), c.Path()
	if dialer {
		c.Close()
	} else {
		closeAfterPeer(ctx, c)
	}
	fmt.Fprintf(stderr, "pipe closed: %d bytes sent, %d received in %.2f s; path: %v\n",
		sent, received, took.Seconds(), path)
	return nil
}

// endSignal is the accepting side's standard output in pipe: Pipe calls
// its CloseWrite once the peer's data has ended, which closes done.
type endSignal struct {
	io.Writer
	done chan struct{}
}

func (e *endSignal) CloseWrite() error {
	close(e.done)
	return nil
}

// endAfter is the accepting side's standard input in pipe: its end (EOF)
// waits until done is closed (the peer's data has ended); when stop is
// closed first (the command's context ended), the end is an error.
type endAfter struct {
	r          io.Reader
	stop, done <-chan struct{}
}

func (e *endAfter) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err == io.EOF {
		select {
		case <-e.done:
		case <-e.stop:
			return n, errors.New("interrupted before the peer's data ended")
		}
	}
	return n, err
}
