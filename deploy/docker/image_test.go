// Package docker holds the container image of icebreaker (Dockerfile,
// build-image.sh) and a test that builds it with podman and gets a STUN
// Binding answer (RFC 8489, Section 3) from the running container.
package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// reflexiveLine is how coturn's turnutils_stunclient prints the mapped
// address of a Binding response.
var reflexiveLine = regexp.MustCompile(`UDP reflexive addr: (\S+)`)

// TestImageServesSTUN builds the FROM scratch image with build-image.sh (a
// static binary, no registry), runs it with host networking on a free
// loopback port, and checks that coturn's turnutils_stunclient gets a
// Binding answer, that the container runs as uid 65534 and can write its
// user store, and that `icebreaker version` and icebreaker_build_info agree.
//
// It needs rootful podman (and runc), which scripts/install-test-deps.sh
// installs; without them, or without root, the test skips and says why.
func TestImageServesSTUN(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image; skipped with -short")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skipf("podman not installed (%v): the image test needs Debian's podman package, run as root", err)
	}
	if os.Geteuid() != 0 {
		t.Skipf("needs root for rootful podman with host networking (uid %d)", os.Geteuid())
	}
	stunclient := testutil.RequireBinary(t, "turnutils_stunclient")

	// Debian 12's crun cannot start containers on a host with hybrid
	// cgroups (v1 controllers plus a v2 mount); runc can, so it is used
	// when installed. The fixed rlimits are below any sane hard limit, so
	// the runtime never needs CAP_SYS_RESOURCE to set them.
	global := []string{}
	if _, err := exec.LookPath("runc"); err == nil {
		global = append(global, "--runtime", "runc")
	}
	runFlags := []string{"--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"}

	unique := fmt.Sprintf("icebreaker-imagetest-%d-%d", os.Getpid(), time.Now().UnixNano())
	image := "localhost/" + unique + ":test"

	buildCtx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	build := testutil.Command(buildCtx, "bash", "build-image.sh", image)
	build.Env = append(os.Environ(), "ENGINE="+podman)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = testutil.Command(ctx, podman, append(global, "rmi", "-f", image)...).Run()
	})

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	podmanOut := func(args ...string) string {
		t.Helper()
		out, err := testutil.Command(ctx, podman, append(global, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	if user := podmanOut("image", "inspect", "--format", "{{.Config.User}}", image); user != "65534:65534" {
		t.Errorf("image user %q, want 65534:65534", user)
	}
	version := strings.TrimPrefix(podmanOut(append(append([]string{"run", "--rm"}, runFlags...), image, "version")...), "icebreaker ")
	if version == "" {
		t.Fatal("`icebreaker version` in the image printed no version")
	}

	// The user store's directory must be writable by uid 65534 (a fresh
	// anonymous volume takes the image directory's owner).
	add := testutil.Command(ctx, podman, append(append(append(append([]string{}, global...), "run", "--rm", "-i"), runFlags...),
		image, "user", "add", "--password-stdin", "alice")...)
	add.Stdin = strings.NewReader("a long enough secret\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Errorf("user add in the image: %v\n%s", err, out)
	}

	port := testutil.FreePort(t)
	metricsPort := testutil.FreePort(t)
	name := unique + "-serve"
	args := append(append(append([]string{}, global...), "run", "--rm", "--name", name), runFlags...)
	// Every listener on a free loopback port: with host networking the
	// rendezvous's fixed defaults (4000, 4001) would clash with other tests.
	args = append(args, image, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--metrics", "127.0.0.1:"+strconv.Itoa(metricsPort),
		"--rendezvous", "127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)),
		"--transit-relay", "127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)))
	// The podman client stays in the foreground and is killed by PID with
	// its process group; SIGKILL is not forwarded to the container, so the
	// container is removed by name as well.
	srv := testutil.Start(t, testutil.Command(ctx, podman, args...))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = testutil.Command(ctx, podman, append(global, "rm", "-f", "--volumes", "--time", "2", name)...).Run()
	})
	if err := srv.WaitForOutput(ctx, "STUN and TURN listening"); err != nil {
		t.Fatalf("container did not start: %v\n%s", err, srv.Output())
	}

	out, err := testutil.Command(ctx, stunclient, "-p", strconv.Itoa(port), "127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("turnutils_stunclient: %v\n%s\nserver:\n%s", err, out, srv.Output())
	}
	m := reflexiveLine.FindStringSubmatch(string(out))
	if m == nil || !strings.HasPrefix(m[1], "127.0.0.1:") {
		t.Fatalf("no loopback reflexive address in:\n%s", out)
	}
	t.Logf("STUN answer from the container: reflexive %s", m[1])

	if uid := podmanOut("top", name, "user"); !strings.Contains(uid, "65534") {
		t.Errorf("container process user:\n%s\nwant 65534", uid)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	if want := `icebreaker_build_info{version="` + version + `"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q; build_info lines:\n%s", want, grep(string(body), "icebreaker_build_info"))
	}
}

func grep(s, substr string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
