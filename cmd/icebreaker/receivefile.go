package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// partSuffix names what is being received: NAME.icebreaker-part until the
// hash matched, then renamed to NAME. A file's part is kept when the
// transfer breaks off, so that the next session offering the same name
// resumes it; a directory's is removed.
const partSuffix = ".icebreaker-part"

// receiveFile connects to an icebreaker sender whose ICE hello is first,
// and receives the file or directory it offers into -o DIR.
func receiveFile(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, fo *fileOptions, first []byte, stdout, stderr io.Writer) error {
	cfg, err := po.config(ctx, w, stderr)
	if err != nil {
		return err
	}
	rep := newTransferReport(o, stdout)
	cfg.OnPathChange = rep.pathChanged
	c, err := peer.Accept(ctx, w, cfg, first)
	if err != nil {
		return err
	}
	defer c.Close()
	rep.connectedOn(c)
	in, err := c.ReceiveOffer(ctx)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(fo.dir)
	if err != nil {
		_ = in.Decline("the receiver cannot open its directory")
		return err
	}
	defer root.Close()
	offer := in.Offer
	exists, err := checkOffer(offer, root, fo)
	replace := fo.force
	if err == nil {
		replace, err = askToAccept(offer, fo, exists, stderr)
	}
	if err != nil {
		_ = in.Decline(err.Error())
		return err
	}
	total := offer.Size
	if offer.Stream {
		total = -1
	}
	rep.start(offer.Name, total)
	start := time.Now()
	var res peer.Result
	if offer.Kind == peer.KindDir {
		res, err = receiveDir(ctx, in, root, replace, rep)
	} else {
		res, err = receiveOneFile(ctx, in, root, replace, rep, stderr)
	}
	rep.finish()
	if err != nil {
		return err
	}
	reportDone(o, c, stdout, "received", offer, filepath.Join(fo.dir, offer.Name), res, time.Since(start))
	return nil
}

// checkOffer checks an offer against the options: a file or a directory,
// a harmless name (no path traversal), what is there already (refused
// unless --force or a terminal to ask on), room on the disk. It reports
// whether the name exists.
func checkOffer(offer peer.Offer, root *os.Root, fo *fileOptions) (exists bool, err error) {
	if offer.Kind != peer.KindFile && offer.Kind != peer.KindDir {
		return false, fmt.Errorf("the sender offers a %q, this receiver takes files and directories", offer.Kind)
	}
	if err := peer.ValidName(offer.Name); err != nil {
		return false, fmt.Errorf("refusing the offered name: %w", err)
	}
	dest := filepath.Join(fo.dir, offer.Name)
	if fi, err := root.Lstat(offer.Name); err == nil {
		exists = true
		switch {
		case !fo.force && !stdinIsTerminal():
			return true, fmt.Errorf("refusing to overwrite %s (use --force)", dest)
		case offer.Kind == peer.KindFile && !fi.Mode().IsRegular():
			return true, fmt.Errorf("refusing to replace %s: not a regular file", dest)
		case offer.Kind == peer.KindDir && !fi.IsDir():
			return true, fmt.Errorf("refusing to replace %s: not a directory", dest)
		}
	}
	need := offer.Size
	if offer.Kind == peer.KindFile {
		if fi, err := root.Lstat(offer.Name + partSuffix); err == nil && fi.Mode().IsRegular() && fi.Size() <= need {
			need -= fi.Size() // at most: the part is kept if it resumes
		}
	}
	if free, ok := freeSpace(fo.dir); ok && !offer.Stream && uint64(need) > free {
		return exists, fmt.Errorf("not enough space in %s: the %s needs %d bytes, %d are free", fo.dir, kindWord(offer), need, free)
	}
	return exists, nil
}

// kindWord is "file" or "directory".
func kindWord(offer peer.Offer) string {
	if offer.Kind == peer.KindDir {
		return "directory"
	}
	return "file"
}

// askToAccept accepts with --accept-file (and, when the name exists,
// --force), asks on a terminal, and refuses otherwise. It reports whether
// what exists is to be replaced.
func askToAccept(offer peer.Offer, fo *fileOptions, exists bool, stderr io.Writer) (replace bool, err error) {
	if fo.accept && (!exists || fo.force) {
		return fo.force, nil
	}
	if !stdinIsTerminal() {
		return false, errors.New("the receiver did not accept the file: standard input is not a terminal to ask on (use --accept-file)")
	}
	what := fmt.Sprintf("file %s (%d bytes)", offer.Name, offer.Size)
	switch {
	case offer.Kind == peer.KindDir:
		what = fmt.Sprintf("directory %s (%d files, %d directories, %d bytes)", offer.Name, offer.Files, offer.Dirs, offer.Size)
	case offer.Stream:
		what = fmt.Sprintf("file %s (streamed, size unknown)", offer.Name)
	}
	question := fmt.Sprintf("Receive %s into %s?", what, fo.dir)
	if exists && !fo.force {
		question = fmt.Sprintf("Receive %s into %s, REPLACING the existing %s?", what, fo.dir, offer.Name)
	}
	fmt.Fprintf(stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return exists, nil
	}
	return false, errors.New("the receiver declined the " + kindWord(offer))
}

// receiveOneFile receives a file into NAME.icebreaker-part under root,
// resuming what an earlier session left there, and installs it as NAME.
func receiveOneFile(ctx context.Context, in *peer.Incoming, root *os.Root, replace bool, rep *transferReport, stderr io.Writer) (peer.Result, error) {
	name := in.Offer.Name
	part := name + partSuffix
	if fi, err := root.Lstat(part); err == nil && !fi.Mode().IsRegular() {
		err := fmt.Errorf("refusing to write %s: it is not a regular file", part)
		_ = in.Decline(err.Error())
		return peer.Result{}, err
	}
	f, err := root.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		_ = in.Decline("the receiver cannot write the file")
		return peer.Result{}, err
	}
	if err := lockPart(f); err != nil {
		f.Close()
		_ = in.Decline(err.Error())
		return peer.Result{}, err
	}
	res, err := in.AcceptFile(ctx, f, rep.progress)
	if err == nil {
		err = f.Chmod(fs.FileMode(in.Offer.Mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if in.Offer.Stream || errors.Is(err, peer.ErrHashMismatch) || res.Offset+res.Bytes == 0 {
			_ = root.Remove(part)
		} else {
			fmt.Fprintf(stderr, "kept the first %d bytes in %s: send the file again to resume\n", res.Offset+res.Bytes, part)
		}
		return res, err
	}
	return res, install(root, part, name, replace)
}

// receiveDir receives a directory into NAME.icebreaker-part under root
// (through an os.Root of its own: nothing lands outside it) and installs
// it as NAME. A part of an earlier session is removed first: directories
// do not resume.
func receiveDir(ctx context.Context, in *peer.Incoming, root *os.Root, replace bool, rep *transferReport) (peer.Result, error) {
	name := in.Offer.Name
	part := name + partSuffix
	err := root.RemoveAll(part)
	if err == nil {
		err = root.Mkdir(part, 0o700)
	}
	var sub *os.Root
	if err == nil {
		sub, err = root.OpenRoot(part)
	}
	if err != nil {
		_ = in.Decline("the receiver cannot write the directory")
		return peer.Result{}, err
	}
	res, err := in.AcceptDir(ctx, sub, rep.progress)
	sub.Close()
	if err == nil {
		err = root.Chmod(part, fs.FileMode(in.Offer.Mode))
	}
	if err != nil {
		_ = root.RemoveAll(part)
		return res, err
	}
	if replace {
		if err := root.RemoveAll(name); err != nil {
			return res, fmt.Errorf("replacing %s: %w (the received directory is %s)", name, err, part)
		}
	} else if _, err := root.Lstat(name); err == nil {
		return res, fmt.Errorf("refusing to overwrite %s, created during the transfer (use --force; the received directory is %s)", name, part)
	}
	return res, root.Rename(part, name)
}

// install moves the received file to dest under root: with replace it
// replaces dest, else a hard link makes sure that a file created there
// meanwhile is not overwritten.
func install(root *os.Root, tmp, dest string, replace bool) error {
	if replace {
		return root.Rename(tmp, dest)
	}
	if err := root.Link(tmp, dest); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("refusing to overwrite %s, created during the transfer (use --force; the received file is %s)", dest, tmp)
		}
		// A file system without hard links: check again, then rename.
		if _, serr := root.Lstat(dest); serr == nil {
			return fmt.Errorf("refusing to overwrite %s, created during the transfer (use --force; the received file is %s)", dest, tmp)
		}
		return root.Rename(tmp, dest)
	}
	return root.Remove(tmp)
}
