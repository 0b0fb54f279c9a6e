package transfer

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// writeTree makes files (path -> content) with modes under dir.
func writeTree(t testing.TB, dir string, files map[string]string, modes map[string]fs.FileMode) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := modes[p]
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func generous() Limits { return Limits{MaxBytes: 1 << 20, MaxFiles: 100, MaxDirs: 100} }

// TestZipRoundTrip: a tree with nested files, modes, an empty directory and
// a symbolic link (skipped) goes through WriteZip and Extract unchanged.
func TestZipRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	files := map[string]string{"a.txt": "alpha", "sub/b.sh": "#!/bin/sh\necho b\n", "sub/deeper/c": "", "sub/deeper/d.bin": string(bytes.Repeat([]byte{1, 2, 3}, 10000))}
	modes := map[string]fs.FileMode{"sub/b.sh": 0o755, "a.txt": 0o600}
	writeTree(t, src, files, modes)
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := WriteZip(&buf, src)
	if err != nil {
		t.Fatal(err)
	}
	if st.NumFiles != 4 || st.NumBytes != int64(5+len(files["sub/b.sh"])+30000) || len(st.Skipped) != 1 || st.Skipped[0] != "sub/link" {
		t.Fatalf("stats %+v", st)
	}
	if err := Extract(bytes.NewReader(buf.Bytes()), int64(buf.Len()), dst, Limits{MaxBytes: st.NumBytes, MaxFiles: st.NumFiles, MaxDirs: 1}); err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(dst, filepath.FromSlash(p))
		got, err := os.ReadFile(full)
		if err != nil || string(got) != content {
			t.Errorf("%s: %v, %d bytes", p, err, len(got))
		}
		fi, _ := os.Stat(full)
		want := modes[p]
		if want == 0 {
			want = 0o644
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "empty")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("empty directory: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "sub", "link")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symbolic link was extracted: %v", err)
	}
}

// zipEntry is one entry of a hand-made zip.
type zipEntry struct {
	name, body string
	mode       fs.FileMode
}

// makeZip builds a zip of entries as a malicious sender could.
func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestExtractRefuses: entries that would write outside the target, links,
// special files, duplicates and zips over the limits are refused, and
// nothing appears outside the target.
func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []zipEntry
		lim     Limits
	}{
		{"dotdot", []zipEntry{{name: "../evil", body: "x"}}, generous()},
		{"nested dotdot", []zipEntry{{name: "a/../../evil", body: "x"}}, generous()},
		{"absolute", []zipEntry{{name: "/tmp/evil", body: "x"}}, generous()},
		{"backslash", []zipEntry{{name: "..\\evil", body: "x"}}, generous()},
		{"unclean", []zipEntry{{name: "a//b", body: "x"}}, generous()},
		{"symlink", []zipEntry{{name: "link", body: "/etc", mode: fs.ModeSymlink | 0o777}}, generous()},
		{"symlink then through it", []zipEntry{{name: "link", body: "..", mode: fs.ModeSymlink | 0o777}, {name: "link/evil", body: "x"}}, generous()},
		{"device", []zipEntry{{name: "dev", mode: fs.ModeDevice | 0o600}}, generous()},
		{"duplicate", []zipEntry{{name: "a", body: "1"}, {name: "a", body: "2"}}, generous()},
		{"too many bytes", []zipEntry{{name: "a", body: "12345"}, {name: "b", body: "678"}}, Limits{MaxBytes: 7, MaxFiles: 10}},
		{"too many files", []zipEntry{{name: "a"}, {name: "b"}}, Limits{MaxBytes: 10, MaxFiles: 1}},
		{"too many dirs", []zipEntry{{name: "a/", mode: fs.ModeDir | 0o755}, {name: "b/", mode: fs.ModeDir | 0o755}}, Limits{MaxDirs: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outer := t.TempDir()
			dst := filepath.Join(outer, "target")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			z := makeZip(t, tc.entries...)
			err := Extract(bytes.NewReader(z), int64(len(z)), dst, tc.lim)
			if !errors.Is(err, ErrUnsafeZip) {
				t.Fatalf("Extract = %v, want ErrUnsafeZip", err)
			}
			ents, _ := os.ReadDir(outer)
			if len(ents) != 1 {
				t.Fatalf("something was written beside the target: %v", ents)
			}
		})
	}
}

// FuzzExtract: arbitrary bytes as a zip never panic Extract, and nothing
// is written outside the target directory.
func FuzzExtract(f *testing.F) {
	f.Add(makeZip(f, zipEntry{name: "a/b", body: "hello"}, zipEntry{name: "c/", mode: fs.ModeDir | 0o700}))
	f.Add(makeZip(f, zipEntry{name: "../x", body: "evil"}))
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Fuzz(func(t *testing.T, z []byte) {
		outer := t.TempDir()
		dst := filepath.Join(outer, "t")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = Extract(bytes.NewReader(z), int64(len(z)), dst, Limits{MaxBytes: 1 << 16, MaxFiles: 64, MaxDirs: 64})
		if ents, _ := os.ReadDir(outer); len(ents) != 1 {
			t.Fatalf("written beside the target: %v", ents)
		}
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Fatalf("a link was extracted: %s", p)
			}
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700) // so that TempDir's cleanup can remove it
			}
			return nil
		})
	})
}
