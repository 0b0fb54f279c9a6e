package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/config"
)

// TestListenAdmin: the socket is created with mode 0600; a stale socket
// is replaced, a live one or a file that is not a socket is an error.
func TestListenAdmin(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.sock")
	ln, err := listenAdmin(config.Admin{Listen: path})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := listenAdmin(config.Admin{Listen: path}); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("a second listener on a live socket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the file behind, as a killed server does
	ln, err = listenAdmin(config.Admin{Listen: path})
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	ln.Close()

	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenAdmin(config.Admin{Listen: file}); err == nil {
		t.Error("a regular file was taken for a stale socket")
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file was touched: %q %v", b, err)
	}
	if ln, err := listenAdmin(config.Admin{Listen: config.NoAdmin}); ln != nil || err != nil {
		t.Errorf("admin.listen none: %v %v", ln, err)
	}
}
