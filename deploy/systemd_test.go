package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies runs `systemd-analyze verify` on
// systemd/icebreaker.service, and logs what `systemd-analyze security
// --offline` rates its sandbox. verify insists that ExecStart's program
// exists, so the test's copy of the unit names an executable that does (the
// test binary); nothing is started.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze not installed (%v): Debian's systemd package has it", err)
	}
	unit, err := os.ReadFile(filepath.Join("systemd", "icebreaker.service"))
	if err != nil {
		t.Fatal(err)
	}
	const bin = "/usr/local/bin/icebreaker"
	if !strings.Contains(string(unit), "ExecStart="+bin+" ") {
		t.Fatalf("the unit's ExecStart no longer runs %s; update this test", bin)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "icebreaker.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), bin, self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	sec, err := exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Logf("systemd-analyze security --offline: %v (older systemd?)", err)
		return
	}
	for _, l := range strings.Split(string(sec), "\n") {
		if strings.Contains(l, "Overall exposure level") {
			t.Log(strings.TrimSpace(l))
		}
	}
}
