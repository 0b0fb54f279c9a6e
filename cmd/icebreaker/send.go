package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// rendezvousEnv names the environment variable that replaces the default
// mailbox server of send, receive, pipe and forward.
const rendezvousEnv = "ICEBREAKER_RENDEZVOUS"

// wormholeOptions are the flags that send and receive share.
type wormholeOptions struct {
	rendezvous string
	verify     bool
	json       bool
	timeout    time.Duration
}

func (o *wormholeOptions) register(fs *flag.FlagSet) {
	def := wormhole.DefaultRendezvousURL
	if v := os.Getenv(rendezvousEnv); v != "" {
		def = v
	}
	fs.StringVar(&o.rendezvous, "rendezvous", def, "mailbox server `URL` (magic-wormhole compatible; also $"+rendezvousEnv+")")
	fs.BoolVar(&o.verify, "verify", false, "print the verifier, which both sides can compare to rule out a man in the middle")
	fs.BoolVar(&o.json, "json", false, "print JSON lines instead of text")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up when the server or the peer is silent this long")
}

func (o *wormholeOptions) config() (wormhole.Config, error) {
	cfg := wormhole.Config{URL: o.rendezvous, Timeout: o.timeout, ClientVersion: version,
		AppVersions: peer.AppVersions()}
	if o.timeout <= 0 {
		return cfg, fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: --rendezvous: %v", errUsage, err)
	}
	return cfg, nil
}

// output prints an event as a JSON line (--json) or as text.
func (o *wormholeOptions) output(w io.Writer, event map[string]any, text string) {
	if o.json {
		_ = json.NewEncoder(w).Encode(event)
		return
	}
	fmt.Fprintln(w, text)
}

// showVerifier prints the verifier when --verify asks for it.
func (o *wormholeOptions) showVerifier(ctx context.Context, w *wormhole.Wormhole, stdout io.Writer) error {
	if !o.verify {
		return nil
	}
	v, err := w.Verifier(ctx)
	if err != nil {
		return err
	}
	h := hex.EncodeToString(v)
	o.output(stdout, map[string]any{"event": "verifier", "verifier": h}, "Verifier "+h)
	return nil
}

// textOffer and textAnswer are magic-wormhole's text transfer messages
// (file-transfer-protocol.md).
type textOffer struct {
	Offer *struct {
		Message   *string         `json:"message,omitempty"`
		File      json.RawMessage `json:"file,omitempty"`
		Directory json.RawMessage `json:"directory,omitempty"`
	} `json:"offer,omitempty"`
	Answer *struct {
		MessageAck string `json:"message_ack,omitempty"`
		FileAck    string `json:"file_ack,omitempty"`
	} `json:"answer,omitempty"`
	Transit json.RawMessage `json:"transit,omitempty"`
	Error   *string         `json:"error,omitempty"`
}

// receiveMessage returns the peer's next message, decoded; a message that is
// not JSON, or an {"error": ...} from the peer (who is the peer: "sender"
// or "receiver"), is an error.
func receiveMessage(ctx context.Context, w *wormhole.Wormhole, who string) (textOffer, []byte, error) {
	b, err := w.Receive(ctx)
	if err != nil {
		return textOffer{}, nil, err
	}
	m, err := decodeMessage(b, who)
	return m, b, err
}

// decodeMessage decodes a message of the peer's, as receiveMessage does.
func decodeMessage(b []byte, who string) (textOffer, error) {
	var m textOffer
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("the %s sent something that is not JSON: %w", who, err)
	}
	if m.Error != nil {
		return m, fmt.Errorf("the %s says: %s", who, *m.Error)
	}
	return m, nil
}

// runSend sends a text message, a file or a directory through a wormhole:
// it allocates a code (or uses --code), prints it, waits for the receiver
// and its acknowledgement. A file goes to an icebreaker receiver over ICE
// and QUIC (package peer), to a plain magic-wormhole receiver by transit
// (wormholefile.go), as does a directory.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o wormholeOptions
	var po peerOptions
	fs := newPeerFlagSet("send", stderr, &o, &po)
	var to transitOptions
	to.register(fs)
	text := fs.String("text", "", "the text `MESSAGE` to send")
	code := fs.String("code", "", "use this `CODE` instead of allocating one (NAMEPLATE-word-word)")
	var so sendOptions
	so.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker send --text MESSAGE [--code CODE] [flags]")
		fmt.Fprintln(stderr, "       icebreaker send FILE|DIR|- [--code CODE] [flags]")
		fmt.Fprintln(stderr, "A file, a directory or standard input (-) goes to 'icebreaker receive' over ICE and QUIC;")
		fmt.Fprintln(stderr, "a file or a directory (as a zip) to 'wormhole receive' by its transit; text to either.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 1:
		return fmt.Errorf("%w: one file only (got %q)", errUsage, pos)
	case len(pos) == 1 && *text != "":
		return fmt.Errorf("%w: --text and a FILE exclude each other", errUsage)
	case len(pos) == 0 && *text == "":
		return fmt.Errorf("%w: --text MESSAGE or a FILE is required", errUsage)
	}
	if err := po.check(); err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if err := to.check(o.rendezvous, po.noRelay); err != nil {
		return err
	}
	var src *source
	if len(pos) == 1 {
		if src, err = openSource(pos[0], &so, stderr); err != nil {
			return err
		}
		defer src.close()
	}
	w, _, err := openPeerWormhole(ctx, cfg, nil, *code)
	if errors.Is(err, errUsage) {
		return err
	}
	if err != nil {
		return failEvent(&o, stdout, err)
	}
	if src != nil {
		err = sendPath(ctx, w, &o, &po, &so, &to, src, stdout, stderr)
	} else {
		err = sendText(ctx, w, &o, *text, stdout, stderr)
	}
	return failEvent(&o, stdout, closeWormhole(w, err, stderr))
}

// announce prints the server's message of the day and the code.
func announce(w *wormhole.Wormhole, o *wormholeOptions, stdout, stderr io.Writer, hint string) {
	if m := w.MOTD(); m != "" {
		fmt.Fprintln(stderr, "Server says:", m)
	}
	o.output(stdout, map[string]any{"event": "code", "code": w.Code().String()},
		"Wormhole code is: "+w.Code().String())
	if !o.json {
		fmt.Fprintln(stderr, "On the other computer, run:", hint)
	}
}

// sendPath announces the code, then sends file or the directory dir by the
// way the receiver supports: over ICE and QUIC to an icebreaker receiver
// (sendFile), by magic-wormhole's transit to a plain one (sendToWormhole).
func sendPath(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, so *sendOptions, to *transitOptions,
	src *source, stdout, stderr io.Writer) error {
	announce(w, o, stdout, stderr, "icebreaker receive (or wormhole receive)")
	if err := o.showVerifier(ctx, w, stdout); err != nil {
		return err
	}
	versions, err := w.PeerAppVersions(ctx)
	if err != nil {
		return err
	}
	if peer.Supported(versions) {
		return sendFile(ctx, w, o, po, so, src, stdout, stderr)
	}
	if src.offer.Stream {
		const reason = "icebreaker sends standard input only to icebreaker receivers (magic-wormhole needs the size first)"
		msg, _ := json.Marshal(map[string]string{"error": reason})
		if err := w.Send(ctx, msg); err != nil {
			return err
		}
		return errors.New("the receiver is a plain magic-wormhole client: " + reason)
	}
	return sendToWormhole(ctx, w, o, po, to, src.file, src.dir, stdout, stderr)
}

func sendText(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, text string, stdout, stderr io.Writer) error {
	announce(w, o, stdout, stderr, "icebreaker receive (or wormhole receive)")
	offer, _ := json.Marshal(map[string]any{"offer": map[string]string{"message": text}})
	if err := w.Send(ctx, offer); err != nil {
		return err
	}
	if err := o.showVerifier(ctx, w, stdout); err != nil {
		return err
	}
	for {
		m, b, err := receiveMessage(ctx, w, "receiver")
		if err != nil {
			return err
		}
		switch {
		case m.Answer != nil && m.Answer.MessageAck == "ok":
			o.output(stdout, map[string]any{"event": "sent", "bytes": len(text)}, "text message sent")
			return nil
		case m.Answer != nil:
			return fmt.Errorf("the receiver answered %s", b)
		}
		// Anything else (a transit message, say) is not for a text send.
	}
}

// closeTimeout bounds the wait for the server to close the mailbox
// after a failure; closeDoneTimeout after the work is done.
const (
	closeTimeout     = 10 * time.Second
	closeDoneTimeout = 2 * time.Second
)

// closeWormhole closes w with the mood that err implies and returns err.
// When err is nil the work is done: the peer has what it needed, so
// closing the mailbox is a courtesy to the server. A server gone since
// the peers connected (the wormhole then tries to reconnect) is waited
// for only closeDoneTimeout, and a close that fails is a warning on
// stderr, not a failure of the command.
func closeWormhole(w *wormhole.Wormhole, err error, stderr io.Writer) error {
	wait := closeTimeout
	if err == nil {
		wait = closeDoneTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	mood := wormhole.Mood("")
	if err != nil && !errors.Is(err, wormhole.ErrWrongCode) {
		mood = wormhole.Errory
	}
	cerr := w.CloseWith(ctx, mood)
	if err == nil && cerr != nil {
		fmt.Fprintln(stderr, "warning: done, but the rendezvous did not close the mailbox:", cerr)
	}
	return err
}
