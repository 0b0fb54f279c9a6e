package stun_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestWireLayerImportsNoRelay: no package under stun/ depends, directly or
// through another, on turn/ or anything else above the STUN layer (ice,
// natbehavior, portmap, peer, wormhole, cmd): DESIGN.md's arrows point
// down, and the wire layer knows no relay (issue 15, part 2). Only the
// shared plumbing under internal/ is below it. Tests may import turn, to
// check the hooks with real ChannelData; the program may not.
func TestWireLayerImportsNoRelay(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list the imports with")
		}
	}
	const module = "github.com/icebreaker-net/icebreaker/"
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	ours := 0
	for p := range strings.FieldsSeq(string(out)) {
		rel, ok := strings.CutPrefix(p, module)
		if !ok {
			continue // the standard library or another module
		}
		ours++
		if rel != "stun" && !strings.HasPrefix(rel, "stun/") && !strings.HasPrefix(rel, "internal/") {
			t.Errorf("stun/... depends on %s", p)
		}
	}
	if ours == 0 {
		t.Fatalf("go list named no package of the module:\n%s", out)
	}
}
