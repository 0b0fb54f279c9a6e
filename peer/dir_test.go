package peer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"a", true},
		{"a/b/c.txt", true},
		{".hidden/x", true},
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{"a\\..\\b", false},
		{"a/nul\x00", false},
		{"a/\xff", false},
		{strings.Repeat("a/", 2049) + "a", false},
	} {
		if err := ValidPath(tc.path); (err == nil) != tc.ok {
			t.Errorf("ValidPath(%q) = %v, want ok %v", tc.path, err, tc.ok)
		}
	}
}

// FuzzValidPath: a path that ValidPath accepts is local (it cannot leave
// the directory it is joined to on any system) and has no "." or ".."
// element.
func FuzzValidPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", "a/./b", "a\\b", "C:x", "a/..", "…/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidPath(p) != nil {
			return
		}
		if !filepath.IsLocal(p) || !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("ValidPath accepted %q", p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == "" || el == "." || el == ".." {
				t.Fatalf("ValidPath accepted %q with the element %q", p, el)
			}
		}
	})
}

// entryStream is a directory's data as the sender writes it: entries, the
// bytes of each file, and done.
func entryStream(entries []Entry, data map[string]string) []byte {
	var b []byte
	for i := range entries {
		b = appendFrame(b, &message{Entry: &entries[i]})
		b = append(b, data[entries[i].Path]...)
	}
	return appendFrame(b, &message{Done: &done{SHA256: strings.Repeat("0", 64)}})
}

// TestReceiveEntries: the receiving end of a directory writes a good
// stream under its root, and refuses streams that would climb out of it
// (through "..", an absolute path, or a symbolic link that leads out),
// overwrite a name, or exceed the offered totals.
func TestReceiveEntries(t *testing.T) {
	outside := t.TempDir()
	offer := Offer{Kind: KindDir, Name: "d", Size: 100, Files: 3, Dirs: 2}
	receive := func(t *testing.T, stream []byte, prepare func(dir string)) (string, error) {
		dir := t.TempDir()
		if prepare != nil {
			prepare(dir)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		h := sha256.New()
		_, last, err := receiveEntries(offer, bytes.NewReader(stream), root, h, &countWriter{w: h})
		if err == nil && last.Done == nil {
			t.Fatal("no done")
		}
		return dir, err
	}
	good := []Entry{{Path: "s", Dir: true, Mode: 0o755}, {Path: "s/a", Mode: 0o640, Size: 3}, {Path: "b", Mode: 0o600, Size: 2}}
	dir, err := receive(t, entryStream(good, map[string]string{"s/a": "abc", "b": "xy"}), nil)
	if err != nil {
		t.Fatalf("a good stream: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "s", "a")); err != nil || string(b) != "abc" {
		t.Errorf("s/a: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "s", "a")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("s/a: mode %v, %v", fi.Mode(), err)
	}

	for _, tc := range []struct {
		name    string
		stream  []byte
		prepare func(dir string)
	}{
		{"dot-dot", rawEntryStream(`{"entry":{"path":"../x","mode":420,"size":1}}`, "x"), nil},
		{"absolute", rawEntryStream(`{"entry":{"path":"`+outside+`/x","mode":420,"size":1}}`, "x"), nil},
		{"setuid", rawEntryStream(`{"entry":{"path":"x","mode":2541,"size":1}}`, "x"), nil},
		{"link out", entryStream([]Entry{{Path: "out/x", Mode: 0o644, Size: 1}}, map[string]string{"out/x": "x"}),
			func(dir string) { _ = os.Symlink(outside, filepath.Join(dir, "out")) }},
		{"link as the file", entryStream([]Entry{{Path: "l", Mode: 0o644, Size: 1}}, map[string]string{"l": "x"}),
			func(dir string) { _ = os.Symlink(filepath.Join(outside, "l"), filepath.Join(dir, "l")) }},
		{"twice", entryStream([]Entry{{Path: "a", Mode: 0o644, Size: 1}, {Path: "a", Mode: 0o644, Size: 1}}, map[string]string{"a": "x"}), nil},
		{"before its directory", entryStream([]Entry{{Path: "n/a", Mode: 0o644, Size: 1}}, map[string]string{"n/a": "x"}), nil},
		{"too many bytes", entryStream([]Entry{{Path: "a", Mode: 0o644, Size: 101}}, map[string]string{"a": strings.Repeat("x", 101)}), nil},
		{"too many files", entryStream([]Entry{{Path: "a", Mode: 0o644}, {Path: "b", Mode: 0o644}, {Path: "c", Mode: 0o644}, {Path: "d", Mode: 0o644}}, nil), nil},
		{"too many dirs", entryStream([]Entry{{Path: "a", Dir: true}, {Path: "b", Dir: true}, {Path: "c", Dir: true}}, nil), nil},
		{"short data", entryStream([]Entry{{Path: "a", Mode: 0o644, Size: 10}}, map[string]string{"a": "x"})[:50], nil},
		{"not an entry", appendFrame(nil, &message{Start: &start{}}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receive(t, tc.stream, tc.prepare)
			t.Logf("%v", err)
			if err == nil {
				t.Fatal("accepted")
			}
			if ents, _ := os.ReadDir(outside); len(ents) > 0 {
				t.Fatalf("wrote outside the root: %v", ents)
			}
		})
	}
}

// rawEntryStream is one entry frame of the JSON and its data, then done.
func rawEntryStream(j, data string) []byte {
	b := append([]byte{0, 0, 0, byte(len(j))}, j...)
	b = append(b, data...)
	return appendFrame(b, &message{Done: &done{SHA256: strings.Repeat("0", 64)}})
}

// TestChunks: chunked data round-trips, and a reader of a stream that
// ends early or holds an oversized chunk fails.
func TestChunks(t *testing.T) {
	var b bytes.Buffer
	data := bytes.Repeat([]byte("0123456789"), maxChunk/4)
	cw := &chunkWriter{w: &b}
	cw.Write(data[:7])
	cw.Write(data[7:])
	cw.Close()
	got, err := io.ReadAll(&chunkReader{r: bytes.NewReader(b.Bytes())})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	for _, bad := range [][]byte{b.Bytes()[:b.Len()-4], b.Bytes()[:100], {0x00, 0x10, 0x00, 0x01}} {
		if _, err := io.ReadAll(&chunkReader{r: bytes.NewReader(bad)}); err == nil {
			t.Errorf("read %d bytes of a broken stream without an error", len(bad))
		}
	}
}

// FuzzChunkReader: the reader of streamed data never panics, never
// returns more than the input held, and data written as chunks reads back
// the same.
func FuzzChunkReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4<<10 {
			return // big inputs cover nothing more, and minimizing them stalls the fuzzer
		}
		got, err := io.ReadAll(&chunkReader{r: bytes.NewReader(b)})
		if len(got) > len(b) {
			t.Fatalf("read %d bytes from %d", len(got), len(b))
		}
		if err != nil && errors.Is(err, io.EOF) {
			t.Fatalf("io.EOF leaked as an error: %v", err)
		}
		var buf bytes.Buffer
		cw := &chunkWriter{w: &buf}
		cw.Write(b)
		cw.Close()
		again, err := io.ReadAll(&chunkReader{r: &buf})
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip of %d bytes: %d, %v", len(b), len(again), err)
		}
	})
}

// TestDataPathAllocs: the writers on a transfer's data path (counting,
// hashing, chunking) allocate nothing per write.
func TestDataPathAllocs(t *testing.T) {
	h := sha256.New()
	var progressed int64
	cw := &countWriter{w: io.MultiWriter(&chunkWriter{w: io.Discard}, h), progress: func(n int64) { progressed = n }}
	buf := make([]byte, 32<<10)
	if n := testing.AllocsPerRun(100, func() { cw.Write(buf) }); n != 0 {
		t.Fatalf("%v allocations per write", n)
	}
	if progressed == 0 {
		t.Fatal("no progress reported")
	}
}
