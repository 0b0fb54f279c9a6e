package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.modified", Value: modified},
		}
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name  string
		stamp string
		info  *debug.BuildInfo
		want  string
	}{
		{"stamp wins", "v1.2.3-4-gabcdef0-dirty", &debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}, "v1.2.3-4-gabcdef0-dirty"},
		{"no build info", "", nil, Unknown},
		{"empty build info", "", &debug.BuildInfo{}, Unknown},
		{"go install at a release", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"devel with clean vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "0123456789ab"},
		{"devel with dirty vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "0123456789ab-dirty"},
		{"pseudo-version prefers vcs", "", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20261207050000-0123456789ab+dirty"},
			Settings: vcs(rev, "true"),
		}, "0123456789ab-dirty"},
		{"pseudo-version without vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207050000-0123456789ab"}}, "v0.0.0-20261207050000-0123456789ab"},
		{"devel without vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, Unknown},
		{"short revision kept whole", "", &debug.BuildInfo{Settings: vcs("abc123", "false")}, "abc123"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.stamp, tc.info); got != tc.want {
				t.Errorf("resolve(%q, ...) = %q, want %q", tc.stamp, got, tc.want)
			}
		})
	}
}

func TestIsPseudo(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"v0.0.0-20261207050000-0123456789ab", true},
		{"v1.2.4-0.20261207050000-0123456789ab", true},
		{"v1.2.3-pre.0.20261207050000-0123456789ab+dirty", true},
		{"v1.2.3", false},
		{"v1.2.3-rc.1", false},
		{"(devel)", false},
		{"", false},
		{"v0.0.0-2026120705000x-0123456789ab", false},
		{"v0.0.0-20261207050000-0123456789aB", false},
	}
	for _, tc := range tests {
		if got := isPseudo(tc.v); got != tc.want {
			t.Errorf("isPseudo(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestStringInTestBinary checks the real ReadBuildInfo path: a test binary
// has build information but no stamp, so String must give a non-empty answer
// and the same one each time.
func TestStringInTestBinary(t *testing.T) {
	if Stamp != "" {
		t.Skipf("binary stamped with %q; the fallback is not exercised", Stamp)
	}
	a, b := String(), String()
	if a == "" || a != b {
		t.Fatalf("String() = %q then %q; want one non-empty value", a, b)
	}
}

// TestBuildInfoFallback builds printversion without a stamp as the main
// module of a fresh git repository (a module nested under ours, so it may
// import internal/version) and checks that the version is the commit, and
// the commit plus -dirty once the tree is modified.
func TestBuildInfoFallback(t *testing.T) {
	goBin := requireGo(t)
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skipf("no git on PATH: %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module github.com/icebreaker-net/icebreaker/vcsprobe\n\ngo 1.26\n\n" +
		"require github.com/icebreaker-net/icebreaker v0.0.0\n\n" +
		"replace github.com/icebreaker-net/icebreaker => " + root + "\n"
	src, err := os.ReadFile(filepath.Join("testdata", "printversion", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", gomod)
	write("pv/main.go", string(src))
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		// Nothing leaves the machine: the one dependency is replaced by
		// this checkout. VCS stamping is forced on whatever GOFLAGS says.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=true", "GOPROXY=off",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	build := func() string {
		t.Helper()
		run(goBin, "build", "-o", "pv.bin", "./pv")
		return run(filepath.Join(dir, "pv.bin"))
	}
	write(".gitignore", "pv.bin\n")
	run(gitBin, "init", "-q")
	build() // writes go.sum, which is then committed with the rest
	run(gitBin, "add", "-A")
	run(gitBin, "commit", "-q", "-m", "probe")
	rev := run(gitBin, "rev-parse", "HEAD")[:shortRev]
	if got := build(); got != rev {
		t.Errorf("clean tree: version %q, want the revision %q", got, rev)
	}
	write("pv/extra.go", "package main\n")
	if got, want := build(), rev+"-dirty"; got != want {
		t.Errorf("modified tree: version %q, want %q", got, want)
	}
}

// TestLinkerStamp builds a tiny program importing this package with the same
// -X flag the Makefile uses and checks that the stamp is what it prints.
func TestLinkerStamp(t *testing.T) {
	goBin := requireGo(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "stamped")
	const want = "v7.8.9-3-gdeadbee-dirty"
	build := exec.Command(goBin, "build", "-o", out,
		"-ldflags", "-X github.com/icebreaker-net/icebreaker/internal/version.Stamp="+want,
		"./testdata/printversion")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	got, err := exec.Command(out).Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if s := strings.TrimSpace(string(got)); s != want {
		t.Errorf("stamped binary prints %q, want %q", s, want)
	}
}

// requireGo returns the go tool's path, skipping the test under -short or
// when there is none: these tests build programs.
func requireGo(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a program; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool on PATH: %v", err)
	}
	return goBin
}
