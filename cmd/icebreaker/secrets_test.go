package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsFromFilesAndEnv: serve takes its users and REST secrets from
// files, and turn check its password and secret from a file or the
// environment; a flag and its file together are a usage error.
func TestSecretsFromFilesAndEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	users := write("users", "# static users\nalice:wonder land\n\nbob:builder\n")
	secrets := write("secrets", "s3cret\n")
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user-db", "none", "--allow-peer", "127.0.0.0/8",
		"--user-file", users, "--rest-secret-file", secrets)
	uri := "turn:" + r.endpoint(t, "udp").String()
	passFile := write("pass", "wonder land\r\n")
	secretFile := write("secret", "s3cret")

	old := clientEnviron
	t.Cleanup(func() { clientEnviron = old })
	env := map[string]string{}
	clientEnviron = func(k string) string { return env[k] }

	check := func(args ...string) (int, string) {
		code, out, errb := runTurnCmd(t, append([]string{"check", uri, "--no-tcp", "--count", "2"}, args...)...)
		return code, out + errb
	}
	if code, out := check("--user", "alice", "--pass-file", passFile); code != 0 {
		t.Errorf("--pass-file: exit %d\n%s", code, out)
	}
	if code, out := check("--secret-file", secretFile); code != 0 {
		t.Errorf("--secret-file: exit %d\n%s", code, out)
	}
	env[envTURNPassword] = "builder"
	if code, out := check("--user", "bob"); code != 0 {
		t.Errorf("password from %s: exit %d\n%s", envTURNPassword, code, out)
	}
	delete(env, envTURNPassword)
	env[envTURNSecret] = "s3cret"
	if code, out := check(); code != 0 {
		t.Errorf("secret from %s: exit %d\n%s", envTURNSecret, code, out)
	}
	if code, out := check("--user", "alice", "--pass", "x", "--pass-file", passFile); code != 2 || !strings.Contains(out, "exclude each other") {
		t.Errorf("--pass with --pass-file: exit %d\n%s", code, out)
	}
	if code, _, errb := runServeOnce(t, "--user", "a:b", "--user-file", users); code != 2 || !strings.Contains(errb, "exclude each other") {
		t.Errorf("serve --user with --user-file: exit %d %s", code, errb)
	}
}
