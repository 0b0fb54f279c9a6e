// Package deploy holds the packaging of icebreaker (container image, systemd
// unit, Kubernetes manifests, compose example). Its tests check that the
// configuration shipped in those files is accepted by the daemon's own
// configuration loader (internal/config), so a renamed key cannot leave them
// silently broken.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/icebreaker-net/icebreaker/internal/config"
)

// TestComposeConfig reads compose/icebreaker.yaml with the variables of
// compose/example.env, as a node of compose.yaml does, and validates it.
func TestComposeConfig(t *testing.T) {
	env := readEnvFile(t, filepath.Join("compose", "example.env"))
	// The PostgreSQL store is opened at startup, not by the loader; the
	// loader only has to accept the URL as the value of turn.user_db.
	c, src, err := config.Read(filepath.Join("compose", "icebreaker.yaml"), env)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(src.UnknownEnv) > 0 {
		t.Errorf("example.env sets variables that are no configuration key: %v", src.UnknownEnv)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", src.Blame(err))
	}
	if c.TURN.NonceSecret == "" || len(c.TURN.RESTSecrets) == 0 || !strings.HasPrefix(c.TURN.UserDB, "postgres://") {
		t.Errorf("shared settings not taken from example.env: nonce_secret %q, rest_secrets %q, user_db %q",
			c.TURN.NonceSecret, c.TURN.RESTSecrets, c.TURN.UserDB)
	}
}

// TestKubernetesConfigMap validates the icebreaker.yaml embedded in the
// ConfigMap of kubernetes/icebreaker.yaml.
func TestKubernetesConfigMap(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("kubernetes", "icebreaker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var found bool
	kinds := map[string]bool{}
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("manifest: %v", err)
		}
		kinds[doc.Kind] = true
		if doc.Kind != "ConfigMap" {
			continue
		}
		text, ok := doc.Data["icebreaker.yaml"]
		if !ok {
			t.Fatal("ConfigMap has no icebreaker.yaml")
		}
		found = true
		c, err := config.Parse([]byte(text))
		if err != nil {
			t.Fatalf("ConfigMap icebreaker.yaml: %v", err)
		}
		if !c.Metrics.Addr().Addr().IsLoopback() {
			t.Errorf("metrics listen %q: the probes expect it on loopback", c.Metrics.Listen)
		}
	}
	if !found || !kinds["DaemonSet"] {
		t.Errorf("manifest kinds %v: want a ConfigMap and a DaemonSet", kinds)
	}
}

// readEnvFile reads NAME=value lines, skipping comments and blank lines.
func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, "=") {
			t.Fatalf("%s: not NAME=value: %q", path, line)
		}
		env = append(env, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}
