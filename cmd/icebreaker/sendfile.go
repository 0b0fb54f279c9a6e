package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// sendOptions are send's flags for files, directories and standard input.
type sendOptions struct {
	name string
	rate byteRate
}

func (so *sendOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&so.name, "name", "", "offer the file under this `NAME` (default: its own name; \"stdin\" for -)")
	fs.Var(&so.rate, "limit-rate", "send at most `RATE` bytes per second (suffix k, M or G: powers of 1024; 0: no limit)")
}

// byteRate is a flag value of bytes per second.
type byteRate int64

func (r *byteRate) String() string { return strconv.FormatInt(int64(*r), 10) }

func (r *byteRate) Set(s string) error {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k") || strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return errors.New("want a number of bytes per second, such as 500k or 10M")
	}
	*r = byteRate(n * mult)
	return nil
}

// source is what send sends: a regular file, standard input (of unknown
// size) or a directory tree.
type source struct {
	offer peer.Offer
	data  io.Reader // a file or standard input
	tree  *peer.Tree
	file  *os.File // the file, when it is one (a plain wormhole receiver's transit)
	dir   string   // the directory, when it is one (zipped for a plain wormhole receiver)
	close func()
}

// stdinName is the name standard input is offered under by default.
const stdinName = "stdin"

// openSource opens what send was asked to send: "-" is standard input, a
// directory is scanned (symbolic links and special files in it are not
// sent, and listed on stderr), anything else must be a regular file (a
// symbolic link given by name is followed).
func openSource(arg string, so *sendOptions, stderr io.Writer) (*source, error) {
	if arg == "-" {
		name := cmp.Or(so.name, stdinName)
		if err := peer.ValidName(name); err != nil {
			return nil, fmt.Errorf("%w: --name: %v", errUsage, err)
		}
		return &source{offer: peer.Offer{Kind: peer.KindFile, Name: name, Stream: true, Mode: 0o644},
			data: stdin, close: func() {}}, nil
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	name := cmp.Or(so.name, filepath.Base(abs))
	if err := peer.ValidName(name); err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		root, err := os.OpenRoot(abs)
		if err != nil {
			return nil, err
		}
		tree, err := peer.ScanDir(root)
		if err != nil {
			root.Close()
			return nil, err
		}
		for _, p := range tree.Skipped {
			fmt.Fprintf(stderr, "not sending %s: not a regular file or directory (symbolic links are not sent)\n", filepath.Join(arg, p))
		}
		return &source{offer: tree.Offer(name, fi.Mode()), tree: tree, dir: abs, close: func() { root.Close() }}, nil
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file or a directory", arg)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &source{offer: peer.Offer{Kind: peer.KindFile, Name: name, Size: fi.Size(), Mode: uint32(fi.Mode().Perm())},
		data: f, file: f, close: func() { f.Close() }}, nil
}

// sendFile sends src to an icebreaker receiver over ICE and QUIC, once
// the code is announced (sendPath).
func sendFile(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, so *sendOptions, src *source, stdout, stderr io.Writer) error {
	cfg, err := po.config(ctx, w, stderr)
	if err != nil {
		return err
	}
	rep := newTransferReport(o, stdout)
	cfg.OnPathChange = rep.pathChanged
	c, err := peer.Dial(ctx, w, cfg)
	if err != nil {
		return err
	}
	defer closeAfterPeer(ctx, c)
	rep.connectedOn(c)
	total := src.offer.Size
	if src.offer.Stream {
		total = -1
	}
	rep.start(src.offer.Name, total)
	opts := peer.SendOptions{Progress: rep.progress, RateLimit: int64(so.rate)}
	start := time.Now()
	var res peer.Result
	if src.tree != nil {
		res, err = c.SendDir(ctx, src.offer, src.tree, opts)
	} else {
		res, err = c.SendFile(ctx, src.offer, src.data, opts)
	}
	rep.finish()
	if err != nil {
		return err
	}
	reportDone(o, c, stdout, "sent", src.offer, "", res, time.Since(start))
	return nil
}

// closeAfterPeer waits (at most pipeLinger) for the peer to close the
// connection, then closes it. The receiving side closes once it has read
// our last word (the end of the stream); closing first could tear down the
// path (a TURN allocation, say) with that word still in flight, and leave
// the receiver waiting for it.
func closeAfterPeer(ctx context.Context, c *peer.Conn) {
	select {
	case <-c.Closed():
	case <-time.After(pipeLinger):
	case <-ctx.Done():
	}
	c.Close()
}
