package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// stdin is where receive reads a code that is not given otherwise; tests
// replace it.
var stdin io.Reader = os.Stdin

// codeEnv names the environment variable that may hold the code, so that it
// does not show in the process list.
const codeEnv = "ICEBREAKER_CODE"

// runReceive receives a text message through a wormhole, a file from an
// icebreaker sender over ICE and QUIC, or a file or directory from a plain
// magic-wormhole sender by transit (wormholefile.go).
func runReceive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o wormholeOptions
	var po peerOptions
	fs := newPeerFlagSet("receive", stderr, &o, &po)
	var fo fileOptions
	fs.StringVar(&fo.dir, "o", ".", "save a received file or directory in this `DIR`")
	fs.BoolVar(&fo.accept, "accept-file", false, "accept a file or directory without asking")
	fs.BoolVar(&fo.force, "force", false, "replace a file or directory of the same name")
	var to transitOptions
	to.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker receive [flags] [CODE]")
		fmt.Fprintf(stderr, "Without CODE, the code comes from $%s or is asked for on standard input.\n", codeEnv)
		fmt.Fprintln(stderr, "Text comes from 'icebreaker send' or 'wormhole send'; a file from 'icebreaker send' over ICE and QUIC,")
		fmt.Fprintln(stderr, "a file or directory from 'wormhole send' by its transit.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: one code only, got %q", errUsage, pos)
	}
	if err := po.check(); err != nil {
		return err
	}
	if err := to.check(o.rendezvous, po.noRelay); err != nil {
		return err
	}
	if fi, err := os.Stat(fo.dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: -o %s: not a directory", errUsage, fo.dir)
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	var code string
	switch {
	case len(pos) == 1:
		code = pos[0]
	case os.Getenv(codeEnv) != "":
		code = os.Getenv(codeEnv)
	default:
		fmt.Fprint(stderr, "Enter receive wormhole code: ")
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("%w: no code given (argument, $%s or standard input): %v", errUsage, codeEnv, err)
		}
		code = strings.TrimSpace(line)
	}
	if _, err := wormhole.ParseCode(code); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	w, err := wormhole.Join(ctx, cfg, code)
	if err != nil {
		return failEvent(&o, stdout, err)
	}
	if m := w.MOTD(); m != "" {
		fmt.Fprintln(stderr, "Server says:", m)
	}
	err = receive(ctx, w, &o, &po, &to, &fo, stdout, stderr)
	return failEvent(&o, stdout, closeWormhole(w, err, stderr))
}

// receive waits for the sender's first message: an ICE hello starts a file
// transfer from an icebreaker sender (package peer), anything else is
// magic-wormhole's file-transfer protocol (text, or a file or directory by
// transit).
func receive(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, to *transitOptions, fo *fileOptions, stdout, stderr io.Writer) error {
	if err := o.showVerifier(ctx, w, stdout); err != nil {
		return err
	}
	first, err := w.Receive(ctx)
	if err != nil {
		return err
	}
	if peer.IsHello(first) {
		return receiveFile(ctx, w, o, po, fo, first, stdout, stderr)
	}
	return receivePlain(ctx, w, o, po, to, fo, first, stdout, stderr)
}

// receivePlain handles magic-wormhole's text transfer, starting with the
// message first, and hands a file or directory offer, with the transit
// message before it, to receiveFromWormhole.
func receivePlain(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, to *transitOptions, fo *fileOptions,
	first []byte, stdout, stderr io.Writer) error {
	var pending [][]byte // the transit message, for a file offer
	for {
		b := first
		first = nil
		var err error
		if b == nil {
			if b, err = w.Receive(ctx); err != nil {
				return err
			}
		}
		m, err := decodeMessage(b, "sender")
		if err != nil {
			return err
		}
		switch {
		case m.Transit != nil && m.Offer == nil:
			pending = append(pending, b) // a file offer follows
			continue
		case m.Offer == nil:
			continue // not for us
		case m.Offer.Message != nil:
			ack, _ := json.Marshal(map[string]any{"answer": map[string]string{"message_ack": "ok"}})
			if err := w.Send(ctx, ack); err != nil {
				return err
			}
			o.output(stdout, map[string]any{"event": "text", "text": *m.Offer.Message}, *m.Offer.Message)
			return nil
		default:
			return receiveFromWormhole(ctx, w, o, po, to, fo, append(pending, b), stdout, stderr)
		}
	}
}
