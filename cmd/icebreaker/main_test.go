package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestInterrupted: a command stopped by Ctrl-C or SIGTERM (its context
// cancelled) says "interrupted" and exits 130, not 1 with "context
// canceled".
func TestInterrupted(t *testing.T) {
	port := testutil.FreePort(t) // nothing answers there
	for _, args := range [][]string{
		{"stun", fmt.Sprintf("127.0.0.1:%d", port), "--timeout", "30s"},
		{"nat", fmt.Sprintf("127.0.0.1:%d", port)},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		if code != 130 || !strings.Contains(errb.String(), "interrupted") || strings.Contains(errb.String(), "context canceled") {
			t.Errorf("%v: exit %d, stderr %q; want 130 and \"interrupted\"", args, code, errb.String())
		}
	}
}

// TestHelpAndUsageErrors: every command prints its help on stdout with
// exit 0 for -h; a bad flag is one line on stderr naming the flag and
// where the help is, exit 2; --version prints the version.
func TestHelpAndUsageErrors(t *testing.T) {
	for _, c := range commands() {
		args := []string{c.name, "-h"}
		if c.name == "turn" || c.name == "ice" {
			args = []string{c.name, map[string]string{"turn": "check", "ice": "offer"}[c.name], "-h"}
		}
		var out, errb bytes.Buffer
		code := run(t.Context(), args, &out, &errb)
		if c.name == "version" {
			continue // takes no flags
		}
		if code != 0 || !strings.Contains(out.String(), "usage") || errb.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and the help on stdout", args, code, out.String(), errb.String())
		}
		out.Reset()
		errb.Reset()
		args[len(args)-1] = "--no-such-flag"
		code = run(t.Context(), args, &out, &errb)
		msg := errb.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "no-such-flag") || !strings.Contains(msg, "see 'icebreaker "+c.name+" -h'") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming the flag and the help", args, code, msg)
		}
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "icebreaker ") {
		t.Errorf("--version: exit %d, %q", code, out.String())
	}
}

// TestJSONFailureObject: a --json run that fails ends with a JSON object
// carrying the error, on one line, for stun, nat and turn check.
func TestJSONFailureObject(t *testing.T) {
	port := testutil.FreePort(t) // nothing answers there
	server := fmt.Sprintf("127.0.0.1:%d", port)
	for _, args := range [][]string{
		{"stun", "--json", "--timeout", "300ms", server},
		{"nat", "--json", "--timeout", "300ms", server},
		{"turn", "check", "--json", "--timeout", "300ms", "--user", "u", "--pass", "p", "turn:" + server},
	} {
		var out, errb bytes.Buffer
		code := run(t.Context(), args, &out, &errb)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var last map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || code != 1 {
			t.Errorf("%v: exit %d, last line %q (%v)", args, code, lines[len(lines)-1], err)
			continue
		}
		if e, _ := last["error"].(string); e == "" {
			t.Errorf("%v: last object %v has no error", args, last)
		}
		for _, l := range lines {
			if !json.Valid([]byte(l)) {
				t.Errorf("%v: line %q is not a JSON object", args, l)
			}
		}
	}
}
