package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// openToSend opens a regular file for sending.
func openToSend(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (directories are not supported yet)", path)
	}
	if err == nil {
		err = peer.ValidName(filepath.Base(path))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sendFile sends file to an icebreaker receiver over ICE and QUIC, once
// the code is announced (sendPath).
func sendFile(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, file *os.File, stdout, stderr io.Writer) error {
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	cfg, err := po.config(ctx, w, stderr)
	if err != nil {
		return err
	}
	c, err := peer.Dial(ctx, w, cfg)
	if err != nil {
		return err
	}
	defer closeAfterPeer(ctx, c)
	reportPath(o, c, stdout)
	offer := peer.Offer{Name: filepath.Base(file.Name()), Size: fi.Size()}
	start := time.Now()
	sum, err := c.SendFile(ctx, offer, file, progress(o, stdout, offer.Size))
	if err != nil {
		return err
	}
	reportDone(o, c, stdout, "sent", offer, "", sum, time.Since(start))
	return nil
}

// reportDone prints the final summary of a transfer.
func reportDone(o *wormholeOptions, c *peer.Conn, stdout io.Writer, verb string, offer peer.Offer, dest string, sum []byte, took time.Duration) {
	ev := pathEvent(c, "done")
	ev["name"], ev["bytes"], ev["sha256"], ev["seconds"] = offer.Name, offer.Size, hex.EncodeToString(sum), took.Seconds()
	if dest != "" {
		ev["file"] = dest
	}
	mbps := 0.0
	if took > 0 {
		mbps = float64(offer.Size) * 8 / took.Seconds() / 1e6
	}
	o.output(stdout, ev, fmt.Sprintf("%s %s: %d bytes in %.2f s (%.1f Mbit/s), SHA-256 %x\npath: %v",
		verb, offer.Name, offer.Size, took.Seconds(), mbps, sum, c.Path()))
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
