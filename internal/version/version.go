// Package version reports which build of icebreaker is running, for
// `icebreaker version`, the SOFTWARE attribute (RFC 8489, Section 14.14) and
// the icebreaker_build_info metric.
//
// The release build (`make build`) stamps the output of
// `git describe --tags --always --dirty` into Stamp with the linker:
//
//	go build -ldflags "-X github.com/icebreaker-net/icebreaker/internal/version.Stamp=v1.2.3" ./cmd/icebreaker
//
// A plain `go build` or `go install` leaves Stamp empty; String then falls
// back to what the Go toolchain recorded in the binary
// (runtime/debug.ReadBuildInfo): the module version for `go install
// module@version`, otherwise the VCS revision and whether the tree was
// modified.
package version

import (
	"runtime/debug"
	"strings"
	"sync"
)

// Stamp is set at link time by `make build`; empty means not stamped.
var Stamp string

// Unknown is what String returns when neither the linker stamp nor the
// build information says anything.
const Unknown = "dev"

// shortRev is how many hex digits of a VCS revision are shown, as git
// describe --always does by default.
const shortRev = 12

var (
	once   sync.Once
	cached string
)

// String returns the running binary's version. It is safe for concurrent
// use and computes the answer once.
func String() string {
	once.Do(func() {
		info, ok := debug.ReadBuildInfo()
		if !ok {
			info = nil
		}
		cached = resolve(Stamp, info)
	})
	return cached
}

// resolve picks the version from the linker stamp, else from the build
// information (nil when the binary has none).
func resolve(stamp string, info *debug.BuildInfo) string {
	if stamp != "" {
		return stamp
	}
	if info == nil {
		return Unknown
	}
	// `go install module@v1.2.3` records a real module version; a build
	// inside the module's own tree records "(devel)" (older toolchains) or a
	// pseudo-version derived from VCS (Go 1.24 and later), which the VCS
	// settings below say more clearly.
	if v := info.Main.Version; v != "" && v != "(devel)" && !isPseudo(v) {
		return v
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		return Unknown
	}
	if len(rev) > shortRev {
		rev = rev[:shortRev]
	}
	if modified {
		return rev + "-dirty"
	}
	return rev
}

// isPseudo reports whether v looks like a Go pseudo-version
// (vX.Y.Z-[pre.]yyyymmddhhmmss-abcdefabcdef, optionally +dirty), which
// names a commit rather than a release.
func isPseudo(v string) bool {
	base, _, _ := strings.Cut(v, "+")
	// The last dash-separated field is a 12-digit revision; the field before
	// it ends in a 14-digit timestamp.
	i := strings.LastIndexByte(base, '-')
	if i < 14 || len(base)-i-1 != 12 || strings.Trim(base[i+1:], "0123456789abcdef") != "" {
		return false
	}
	ts := base[i-14 : i]
	return strings.Trim(ts, "0123456789") == ""
}
