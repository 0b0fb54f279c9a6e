package peer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode/utf8"
)

// A directory is one transfer stream (transfer.go) whose offer is
// {"kind":"dir","name":N,"size":TOTAL,"files":F,"dirs":D,"mode":M}. Its
// data, once accepted, is a sequence of entries, each a frame
//
//	{"entry":{"path":"sub/file.txt","mode":420,"size":S}}   then S bytes
//	{"entry":{"path":"sub","dir":true,"mode":493}}
//
// in an order where a directory comes before what it holds, then done.
// Paths are relative to the offered directory, "/"-separated, each element
// a ValidName; modes are permission bits only. Symbolic links and other
// files that are neither regular files nor directories are not sent (the
// sender lists them as skipped); nothing else describes them. The hash in
// done covers the stream: each entry's frame as it was sent, and each
// file's bytes. The receiver writes only through an os.Root opened on the
// directory it fills, creates every file anew (O_EXCL: never through a
// name that exists), and refuses an entry that exceeds the offer's totals.

// maxPath caps an entry's path.
const maxPath = 4096

// Entry is one file or directory inside an offered directory: plain data.
type Entry struct {
	// Path is relative to the offered directory (see ValidPath).
	Path string `json:"path"`
	// Dir marks a directory.
	Dir bool `json:"dir,omitempty"`
	// Mode holds the permission bits (0o777).
	Mode uint32 `json:"mode"`
	// Size is a file's size.
	Size int64 `json:"size,omitempty"`
}

// ValidPath checks an entry's path: relative, "/"-separated, at most
// maxPath bytes, each element a ValidName (so no "", ".", "..", "\", NUL
// or other control character), valid UTF-8.
func ValidPath(p string) error {
	switch {
	case p == "":
		return errors.New("peer: empty path")
	case len(p) > maxPath:
		return fmt.Errorf("peer: path of %d bytes is too long", len(p))
	case !utf8.ValidString(p):
		return fmt.Errorf("peer: path %q is not UTF-8", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("peer: path %q is absolute", p)
	}
	for el := range strings.SplitSeq(p, "/") {
		if err := ValidName(el); err != nil {
			return fmt.Errorf("peer: path %q: %w", p, err)
		}
	}
	return nil
}

// Tree is a directory to send: the entries ScanDir found, read through
// its root. Make it with ScanDir; it is read-only after, and one SendDir
// at a time may send it.
type Tree struct {
	Entries []Entry
	// Skipped lists the paths that are not sent: symbolic links, devices,
	// sockets and pipes.
	Skipped []string
	// Files, Dirs and Size are the totals of Entries.
	Files, Dirs, Size int64
	root              *os.Root
}

// ScanDir lists the tree under root: every directory and regular file,
// parents first, with permission bits only. It follows no symbolic link.
// The Tree reads its files through root, which the caller keeps open
// until the transfer ends.
func ScanDir(root *os.Root) (*Tree, error) {
	t := &Tree{root: root}
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if err := ValidPath(p); err != nil {
			return fmt.Errorf("cannot send %s: %w", p, err)
		}
		switch {
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.Entries = append(t.Entries, Entry{Path: p, Dir: true, Mode: uint32(fi.Mode().Perm())})
			t.Dirs++
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.Entries = append(t.Entries, Entry{Path: p, Mode: uint32(fi.Mode().Perm()), Size: fi.Size()})
			t.Files++
			t.Size += fi.Size()
		default:
			t.Skipped = append(t.Skipped, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peer: scanning %s: %w", root.Name(), err)
	}
	return t, nil
}

// Offer returns the offer of the tree under the name, with the mode of
// its top directory.
func (t *Tree) Offer(name string, mode fs.FileMode) Offer {
	return Offer{Kind: KindDir, Name: name, Size: t.Size, Files: t.Files, Dirs: t.Dirs, Mode: uint32(mode.Perm())}
}

// SendDir offers the tree (offer from t.Offer) on a new stream and, when
// the receiver accepts, sends its entries and waits for the verdict. A
// file that shrank since ScanDir fails the transfer; one that grew is
// sent up to its scanned size.
func (c *Conn) SendDir(ctx context.Context, offer Offer, t *Tree, opts SendOptions) (Result, error) {
	offer.Kind = KindDir
	if err := ValidName(offer.Name); err != nil {
		return Result{}, err
	}
	s, _, stop, err := c.offer(ctx, &offer)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	defer s.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(dataWriter(ctx, s, opts), h), progress: opts.Progress}
	var res Result
	for i := range t.Entries {
		e := &t.Entries[i]
		b := appendFrame(nil, &message{Entry: e})
		if _, err := s.Write(b); err != nil {
			return res, fmt.Errorf("peer: sending: %w", err)
		}
		_, _ = h.Write(b)
		if e.Dir {
			continue
		}
		if err := sendEntry(cw, t.root, e); err != nil {
			return res, fmt.Errorf("peer: sending %s: %w", e.Path, err)
		}
	}
	res.Bytes = cw.n
	res.SHA256, err = finishSend(s, h)
	return res, err
}

// sendEntry copies the file of e to w.
func sendEntry(w io.Writer, root *os.Root, e *Entry) error {
	f, err := root.Open(e.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("no longer a regular file (%v)", err)
	}
	n, err := io.Copy(w, io.LimitReader(f, e.Size))
	if err == nil && n != e.Size {
		err = fmt.Errorf("the file shrank: %d of %d bytes", n, e.Size)
	}
	return err
}

// AcceptDir accepts a directory offer and writes its entries under root,
// which should be empty (a name that exists is not replaced: the transfer
// fails). progress, when not nil, gets the file bytes received so far.
// Directories get their modes at the end, deepest first, so that a
// read-only one can still be filled. It returns the stream's SHA-256 once
// it matches the sender's, or an error wrapping ErrHashMismatch; either
// way the sender learns the verdict.
func (in *Incoming) AcceptDir(ctx context.Context, root *os.Root, progress func(int64)) (Result, error) {
	if in.Offer.Kind != KindDir {
		return Result{}, fmt.Errorf("peer: the offer is a %q, not a directory", in.Offer.Kind)
	}
	s := in.s
	defer streamCtx(ctx, s)()
	defer s.Close()
	if err := writeFrame(s, &message{Answer: &answer{Accept: true}}); err != nil {
		return Result{}, fmt.Errorf("peer: accepting: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: h, progress: progress}
	var res Result
	dirs, last, err := receiveEntries(in.Offer, s, root, h, cw)
	res.Bytes = cw.n
	if err != nil {
		_ = writeFrame(s, &message{Ack: &ack{Error: err.Error()}})
		return res, fmt.Errorf("peer: receiving: %w", err)
	}
	res.SHA256, err = checkDone(s, h, last, func() error {
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := root.Chmod(dirs[i].Path, fs.FileMode(dirs[i].Mode)); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// receiveEntries reads entries from s into root until the sender's done,
// which it returns, hashing each entry's frame into h and the data through
// cw (whose writer is h). It returns the directories it made.
func receiveEntries(offer Offer, s io.Reader, root *os.Root, h io.Writer, cw *countWriter) ([]Entry, *message, error) {
	var dirs []Entry
	var files int64
	for {
		m, err := readFrame(s)
		switch {
		case err != nil:
			return dirs, nil, fmt.Errorf("reading an entry: %w", err)
		case m.Done != nil:
			return dirs, m, nil
		case m.Entry == nil:
			return dirs, nil, errors.New("the sender sent something else than an entry")
		}
		_, _ = h.Write(appendFrame(nil, m))
		e := m.Entry
		if e.Dir {
			if int64(len(dirs)) >= offer.Dirs {
				return dirs, nil, fmt.Errorf("more than the %d directories offered", offer.Dirs)
			}
			if err := root.Mkdir(e.Path, 0o700); err != nil {
				return dirs, nil, err
			}
			dirs = append(dirs, *e)
			continue
		}
		if files++; files > offer.Files || e.Size > offer.Size-cw.n {
			return dirs, nil, fmt.Errorf("more than the %d files and %d bytes offered", offer.Files, offer.Size)
		}
		if err := receiveEntry(root, e, s, cw); err != nil {
			return dirs, nil, fmt.Errorf("%s: %w", e.Path, err)
		}
	}
}

// receiveEntry creates the file of e under root, never through a name that
// exists, and copies its data from s to it and to cw.
func receiveEntry(root *os.Root, e *Entry, s io.Reader, cw *countWriter) error {
	f, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.MultiWriter(f, cw), io.LimitReader(s, e.Size))
	if err == nil && n != e.Size {
		err = fmt.Errorf("the data ended after %d of %d bytes", n, e.Size)
	}
	if err == nil {
		err = f.Chmod(fs.FileMode(e.Mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
