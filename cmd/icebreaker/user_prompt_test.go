//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the controlling side, where the
// test types, and the terminal that the command reads.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// TestUserAddPrompt: without --password or --password-stdin, on a
// terminal, user add asks twice without echo; usernames with a space or a
// colon are refused.
func TestUserAddPrompt(t *testing.T) {
	ctl, tty := openPTY(t)
	old := userStdin
	t.Cleanup(func() { userStdin = old })
	userStdin = tty
	db := filepath.Join(t.TempDir(), "u.db")
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(t.Context(), []string{"user", "add", "--db", db, "alice"}, &out, &errb) }()
	// Type each answer once its prompt is shown, as a person would: the
	// terminal would echo what is typed before echo is off.
	var shown bytes.Buffer
	buf := make([]byte, 4096)
	for _, prompt := range []string{"Password: ", "Password again: "} {
		for !strings.HasSuffix(shown.String(), prompt) {
			n, err := ctl.Read(buf)
			if err != nil {
				t.Fatalf("reading the terminal: %v (so far %q)", err, shown.String())
			}
			shown.Write(buf[:n])
		}
		// The prompt is printed just before echo goes off: type once
		// the terminal says it is off (bounded wait).
		for i := 0; ; i++ {
			tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if tio.Lflag&unix.ECHO == 0 {
				break
			}
			if i == 1000 {
				t.Fatal("echo never went off")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := ctl.WriteString("s3cret\n"); err != nil {
			t.Fatal(err)
		}
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tty.Close()
	for {
		n, err := ctl.Read(buf)
		shown.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if s := shown.String(); strings.Contains(s, "s3cret") {
		t.Errorf("the terminal showed %q: the password was echoed", s)
	}
	if !strings.Contains(out.String(), `added user "alice"`) {
		t.Errorf("stdout %q", out.String())
	}
	for _, name := range []string{"bob smith", "1700000000:bob"} {
		code := run(t.Context(), []string{"user", "add", "--db", db, "--password", "x", name}, &out, &errb)
		if code != 2 {
			t.Errorf("user add %q: exit %d, want 2", name, code)
		}
	}
}
