package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestForward: `icebreaker forward --listen` and `icebreaker forward --to`
// (two built binaries, loopback, the reference mailbox server) carry three
// concurrent TCP connections to an echo server, each on its own QUIC
// stream, half-close included; an interrupt ends the listening side, and
// the other side then ends by itself, both with status 0.
func TestForward(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served sync.WaitGroup
	defer served.Wait() // after the echo server closed, below
	defer echo.Close()
	served.Go(func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			served.Go(func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	const code = "41-forward-test"
	var errL, errT bytes.Buffer
	l := testutil.Command(ctx, bin, append([]string{"forward", "--rendezvous", mb.URL, "--code", code, "--listen", listen}, loopbackPeer...)...)
	to := testutil.Command(ctx, bin, append([]string{"forward", "--rendezvous", mb.URL, "--to", echo.Addr().String(), code}, loopbackPeer...)...)
	l.Stderr, to.Stderr = &errL, &errT
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := to.Start(); err != nil {
		t.Fatal(err)
	}
	dump := func() string { return fmt.Sprintf("listen side:\n%s\nto side:\n%s", errL.String(), errT.String()) }
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() {
			errs <- roundTrip(listen, 100_000*(i+1))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("%v\n%s", err, dump())
		}
	}
	l.Process.Signal(os.Interrupt)
	errLW, errTW := l.Wait(), to.Wait()
	if errLW != nil || errTW != nil {
		t.Fatalf("listen side: %v, to side: %v\n%s", errLW, errTW, dump())
	}
	if !strings.Contains(errL.String(), "forwarding connections to") || !strings.Contains(errT.String(), "forwarding the peer's connections to") {
		t.Errorf("missing messages\n%s", dump())
	}
}

// roundTrip connects to addr (retrying while the forwarder connects to its
// peer), sends n random bytes, half-closes and checks the echo.
func roundTrip(addr string, n int) error {
	var c net.Conn
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("connection of %d bytes: %w", n, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("connection of %d bytes: got %d bytes back, or other ones", n, len(got))
	}
	return nil
}
