package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// fileOptions are receive's flags for saving a file.
type fileOptions struct {
	dir    string
	accept bool
	force  bool
}

// receiveFile connects to an icebreaker sender whose ICE hello is first,
// and receives the file it offers into --output-dir.
func receiveFile(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, fo *fileOptions, first []byte, stdout, stderr io.Writer) error {
	cfg, err := po.config(ctx, w, stderr)
	if err != nil {
		return err
	}
	c, err := peer.Accept(ctx, w, cfg, first)
	if err != nil {
		return err
	}
	defer c.Close()
	reportPath(o, c, stdout)
	in, err := c.ReceiveOffer(ctx)
	if err != nil {
		return err
	}
	offer := in.Offer
	dest, err := checkOffer(offer, fo)
	if err == nil {
		err = askToAccept(offer, fo, stderr)
	}
	if err != nil {
		_ = in.Decline(err.Error())
		return err
	}
	tmp, err := os.CreateTemp(fo.dir, "."+offer.Name+".*.icebreaker-partial")
	if err != nil {
		_ = in.Decline("the receiver cannot write the file")
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once installed
	start := time.Now()
	sum, err := in.Accept(ctx, tmp, progress(o, stdout, offer.Size))
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := install(tmp.Name(), dest, fo.force); err != nil {
		return err
	}
	reportDone(o, c, stdout, "received", offer, dest, sum, time.Since(start))
	return nil
}

// checkOffer checks an offer against the options: a file, a harmless name
// (no path traversal), no file of that name unless --force, room on the
// disk. It returns where the file goes.
func checkOffer(offer peer.Offer, fo *fileOptions) (string, error) {
	if offer.Kind != peer.KindFile {
		return "", fmt.Errorf("the sender offers a %q, this receiver takes files", offer.Kind)
	}
	if err := peer.ValidName(offer.Name); err != nil {
		return "", fmt.Errorf("refusing the offered file name: %w", err)
	}
	dest := filepath.Join(fo.dir, offer.Name)
	if fi, err := os.Lstat(dest); err == nil {
		if !fo.force {
			return "", fmt.Errorf("refusing to overwrite %s (use --force)", dest)
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("refusing to replace %s: not a regular file", dest)
		}
	}
	if free, ok := freeSpace(fo.dir); ok && uint64(offer.Size) > free {
		return "", fmt.Errorf("not enough space in %s: the file has %d bytes, %d are free", fo.dir, offer.Size, free)
	}
	return dest, nil
}

// askToAccept accepts with --accept-file, asks on a terminal, and refuses
// otherwise.
func askToAccept(offer peer.Offer, fo *fileOptions, stderr io.Writer) error {
	if fo.accept {
		return nil
	}
	if !stdinIsTerminal() {
		return errors.New("the receiver did not accept the file: standard input is not a terminal to ask on (use --accept-file)")
	}
	fmt.Fprintf(stderr, "Receive file %s (%d bytes) into %s? [y/N] ", offer.Name, offer.Size, fo.dir)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errors.New("the receiver declined the file")
}

// install moves the received file to dest: with force it replaces dest,
// else a hard link makes sure that a file created there meanwhile is not
// overwritten.
func install(tmp, dest string, force bool) error {
	if force {
		return os.Rename(tmp, dest)
	}
	if err := os.Link(tmp, dest); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("refusing to overwrite %s, created during the transfer (use --force)", dest)
		}
		// A file system without hard links: check again, then rename.
		if _, serr := os.Lstat(dest); serr == nil {
			return fmt.Errorf("refusing to overwrite %s, created during the transfer (use --force)", dest)
		}
		return os.Rename(tmp, dest)
	}
	return os.Remove(tmp)
}
