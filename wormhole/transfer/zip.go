package transfer

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnsafeZip: a zip that Extract refuses: an entry outside the target
// (an absolute path, "..", a backslash), a link or special file, a
// duplicate, or more files or bytes than the limits allow.
var ErrUnsafeZip = errors.New("transfer: unsafe zip")

// DirStats counts what WriteZip put in a zip: the directory offer's
// numfiles and numbytes.
type DirStats struct {
	NumFiles int64
	NumBytes int64
	// Skipped are the paths (relative, slash-separated) of symbolic links
	// and special files, which are not sent.
	Skipped []string
}

// WriteZip writes dir's tree to w as magic-wormhole sends a directory: a
// deflated zip whose entries are the regular files below dir, named by
// their slash-separated path relative to dir, with their Unix modes and
// times; empty directories get an entry of their own ("sub/"). Symbolic
// links and special files are skipped and listed in the stats.
func WriteZip(w io.Writer, dir string) (DirStats, error) {
	var st DirStats
	zw := zip.NewWriter(w)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, err
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			ents, err := fs.ReadDir(root.FS(), p)
			if err != nil || len(ents) > 0 {
				return err
			}
			hdr, err := zip.FileInfoHeader(fi)
			if err != nil {
				return err
			}
			hdr.Name = p + "/"
			_, err = zw.CreateHeader(hdr)
			return err
		case !fi.Mode().IsRegular():
			st.Skipped = append(st.Skipped, p)
			return nil
		}
		return addFile(zw, root, p, fi, &st)
	})
	if err != nil {
		return st, fmt.Errorf("transfer: zipping %s: %w", dir, err)
	}
	return st, zw.Close()
}

// addFile adds the regular file p of root to zw.
func addFile(zw *zip.Writer, root *os.Root, p string, fi fs.FileInfo, st *DirStats) error {
	hdr, err := zip.FileInfoHeader(fi)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method = p, zip.Deflate
	f, err := root.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	zf, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	n, err := io.Copy(zf, f)
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("%s changed size while being zipped", p)
	}
	st.NumFiles++
	st.NumBytes += n
	return nil
}

// Limits bound what Extract writes. The zero value allows nothing.
type Limits struct {
	// MaxBytes caps the files' bytes together, counted as written (not
	// as the zip claims).
	MaxBytes int64
	// MaxFiles caps the number of files; MaxDirs that of directory
	// entries.
	MaxFiles int64
	MaxDirs  int64
}

// Extract unpacks the zip r (of size bytes) into the existing directory
// dest, refusing (ErrUnsafeZip) any entry that could write outside it:
// absolute paths, "..", backslashes, links, special files, duplicates, and
// more than lim allows. Files are created, never opened if they exist
// (dest should be new and empty), and get their permission bits from the
// zip (setuid, setgid and sticky bits dropped; 0644 or 0755 when the zip
// has none). On error, dest holds what was written so far; the caller
// removes it.
func Extract(r io.ReaderAt, size int64, dest string, lim Limits) error {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("transfer: reading the zip: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	var files, dirs, written int64
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirModes []dirMode
	for _, f := range zr.File {
		name, isDir, err := entryName(f)
		if err != nil {
			return err
		}
		perm := f.Mode().Perm()
		if isDir {
			if dirs++; dirs > lim.MaxDirs {
				return fmt.Errorf("%w: more than %d directories", ErrUnsafeZip, lim.MaxDirs)
			}
			if err := root.MkdirAll(name, 0o700); err != nil {
				return fmt.Errorf("transfer: %s: %w", name, err)
			}
			if perm == 0 {
				perm = 0o755
			}
			dirModes = append(dirModes, dirMode{name, perm})
			continue
		}
		if files++; files > lim.MaxFiles {
			return fmt.Errorf("%w: more than the %d files offered", ErrUnsafeZip, lim.MaxFiles)
		}
		if perm == 0 {
			perm = 0o644
		}
		n, err := extractFile(root, f, name, perm, lim.MaxBytes-written)
		written += n
		if err != nil {
			return err
		}
	}
	// Directories last, deepest first, so that a read-only one was
	// writable while it filled.
	slices.SortFunc(dirModes, func(a, b dirMode) int { return strings.Compare(b.name, a.name) })
	for _, d := range dirModes {
		if err := root.Chmod(d.name, d.mode); err != nil {
			return err
		}
	}
	return nil
}

// entryName checks an entry's name and type and returns its local path.
func entryName(f *zip.File) (string, bool, error) {
	raw := f.Name
	isDir := strings.HasSuffix(raw, "/")
	name := strings.TrimSuffix(raw, "/")
	switch {
	case strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/"):
		return "", false, fmt.Errorf("%w: entry %q", ErrUnsafeZip, raw)
	case !filepath.IsLocal(name) || path.Clean(name) != name || slices.Contains(strings.Split(name, "/"), ".."):
		return "", false, fmt.Errorf("%w: entry %q leaves the target directory", ErrUnsafeZip, raw)
	}
	mode := f.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return "", false, fmt.Errorf("%w: entry %q is a symbolic link", ErrUnsafeZip, raw)
	case mode.IsDir() != isDir || mode.Type()&^fs.ModeDir != 0:
		return "", false, fmt.Errorf("%w: entry %q is not a regular file or directory (%v)", ErrUnsafeZip, raw, mode)
	}
	return filepath.FromSlash(name), isDir, nil
}

// extractFile writes entry f to name under root, at most limit bytes, and
// returns how many it wrote.
func extractFile(root *os.Root, f *zip.File, name string, perm fs.FileMode, limit int64) (int64, error) {
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return 0, fmt.Errorf("transfer: %s: %w", dir, err)
		}
	}
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("transfer: %s in the zip: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return 0, fmt.Errorf("%w: %q is in the zip twice", ErrUnsafeZip, f.Name)
	}
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, io.LimitReader(rc, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%w: the files hold more bytes than offered", ErrUnsafeZip)
	}
	if err == nil {
		err = out.Chmod(perm)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("transfer: %s: %w", name, err)
	}
	return n, nil
}
