package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
)

// TestOverwritePrompt: an offer of a name that exists is refused without
// --force when there is no terminal to ask on; on a terminal the prompt
// says that it replaces the file, and only a yes replaces it.
func TestOverwritePrompt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	offer := peer.Offer{Kind: peer.KindFile, Name: "f", Size: 10}
	savedTerm, savedStdin := stdinIsTerminal, stdin
	t.Cleanup(func() { stdinIsTerminal, stdin = savedTerm, savedStdin })

	for _, tc := range []struct {
		name     string
		terminal bool
		answer   string
		fo       fileOptions
		replace  bool
		err      string
	}{
		{"no terminal", false, "", fileOptions{accept: true}, false, "refusing to overwrite"},
		{"no terminal, --force", false, "", fileOptions{accept: true, force: true}, true, ""},
		{"terminal, yes", true, "y\n", fileOptions{accept: true}, true, ""},
		{"terminal, no", true, "n\n", fileOptions{accept: true}, false, "declined"},
		{"terminal, nothing", true, "", fileOptions{}, false, "declined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdinIsTerminal = func() bool { return tc.terminal }
			stdin = strings.NewReader(tc.answer)
			tc.fo.dir = dir
			var prompt strings.Builder
			exists, err := checkOffer(offer, root, &tc.fo)
			replace := false
			if err == nil {
				replace, err = askToAccept(offer, &tc.fo, exists, &prompt)
			}
			switch {
			case tc.err == "" && err != nil, tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want %q", err, tc.err)
			case replace != tc.replace:
				t.Fatalf("replace %v, want %v", replace, tc.replace)
			case tc.terminal && !strings.Contains(prompt.String(), "REPLACING the existing f"):
				t.Fatalf("prompt %q does not say that it replaces f", prompt.String())
			}
		})
	}
}

// TestTransferReportEvents: with --json, a selected-pair change before the
// connection is up prints nothing (the path event covers it), one after
// prints a path-change event whose path the progress events then carry;
// progress events are throttled but the last one is always printed.
func TestTransferReportEvents(t *testing.T) {
	var out strings.Builder
	r := newTransferReport(&wormholeOptions{json: true}, &out)
	clock := time.Unix(1e9, 0)
	r.now = func() time.Time { return clock }
	relay := peer.Path{LocalType: "relay", LocalAddr: "192.0.2.1:5000", RemoteType: "srflx", RemoteAddr: "198.51.100.1:6000"}
	direct := peer.Path{LocalType: "host", LocalAddr: "10.0.0.1:5000", RemoteType: "srflx", RemoteAddr: "198.51.100.1:6000"}
	r.pathChanged(relay)
	if out.Len() != 0 {
		t.Fatalf("before the connection: %q", out.String())
	}
	r.mu.Lock()
	r.connected, r.kind = true, "relay"
	r.mu.Unlock()
	r.start("f", 100)
	r.progress(10)
	clock = clock.Add(progressEvery - 1)
	r.progress(20) // within 250 ms of the last: not printed
	r.pathChanged(direct)
	r.progress(100)
	r.finish()
	var kinds []string
	for _, ev := range jsonEvents(t, out.String()) {
		kinds = append(kinds, fmt.Sprintf("%v:%v:%v", ev["event"], ev["path"], ev["bytes"]))
	}
	want := "progress:relay:10 path-change:direct:<nil> progress:direct:100"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("events %s, want %s\n%s", got, want, out.String())
	}
}

// FuzzByteRate: --limit-rate's parser never panics, accepts only rates
// from 0 to 2^50 bytes per second, and its String parses back to the same
// rate.
func FuzzByteRate(f *testing.F) {
	for _, s := range []string{"0", "500k", "10M", "1G", "-1", "1.5M", "M", "99999999999999999G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r byteRate
		if r.Set(s) != nil {
			return
		}
		if r < 0 || r > 1<<50 {
			t.Fatalf("%q gave %d", s, r)
		}
		var again byteRate
		if err := again.Set(r.String()); err != nil || again != r {
			t.Fatalf("%q: %d, again %d, %v", s, r, again, err)
		}
	})
}
