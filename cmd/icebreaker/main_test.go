package main

import (
	"bytes"
	"context"
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
