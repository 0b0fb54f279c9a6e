package natlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binaries built by BuildBinary live in one directory per test binary run,
// made with os.MkdirTemp on first use. It is not tied to any single test, so
// nothing removes it automatically: a TestMain may call Cleanup after m.Run
// to remove it; otherwise it stays in os.TempDir (named natlab-bin-*).
var (
	buildMu   sync.Mutex
	buildDir  string
	buildSeq  int
	buildOnce = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary runs "go build" on pkg (an import path such as
// "github.com/icebreaker-net/icebreaker/cmd/icebreaker", or a directory
// relative to the test's working directory such as "./testdata/helper") once
// per test binary run, and returns the path of the executable. Later calls
// with the same pkg return the same path (or fail the same way). A build
// failure fails the test, so BuildBinary must be called from the test
// goroutine. It does not need root.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	r := buildOnce[pkg]
	if r == nil {
		r = &buildResult{}
		buildOnce[pkg] = r
	}
	buildMu.Unlock()
	r.once.Do(func() { r.path, r.err = goBuild(pkg) })
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

// Cleanup removes the binaries made by BuildBinary. Call it from TestMain
// after m.Run; calling BuildBinary afterwards builds again.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	buildDir = ""
	buildOnce = map[string]*buildResult{}
}

func goBuild(pkg string) (string, error) {
	buildMu.Lock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "natlab-bin-")
		if err != nil {
			buildMu.Unlock()
			return "", fmt.Errorf("natlab: %w", err)
		}
		buildDir = d
	}
	buildSeq++
	// A sequence number keeps "a/cmd/x" and "b/cmd/x" apart.
	out := filepath.Join(buildDir, fmt.Sprintf("%d-%s", buildSeq, binName(pkg)))
	buildMu.Unlock()

	goTool, err := exec.LookPath("go")
	if err != nil {
		// "go test" puts $GOROOT/bin first in PATH; this covers a test
		// binary that was started by hand.
		if root := os.Getenv("GOROOT"); root != "" {
			goTool = filepath.Join(root, "bin", "go")
		} else {
			return "", fmt.Errorf("natlab: building %s: go command not found: %w", pkg, err)
		}
	}
	cmd := exec.Command(goTool, "build", "-o", out, pkg)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("natlab: go build %s: %v\n%s", pkg, err, stderr.String())
	}
	return out, nil
}

// binName turns a package path into a file name.
func binName(pkg string) string {
	base := path.Base(filepath.ToSlash(strings.TrimRight(pkg, "/")))
	base = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, base)
	if base == "" || base == "_" {
		base = "bin"
	}
	return base
}
