package peer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// loopbackConfig gathers host candidates on 127.0.0.1 only.
func loopbackConfig() peer.Config {
	return peer.Config{Gather: ice.GatherConfig{IncludeLoopback: true, DisableIPv6: true,
		IPFilter: func(a netip.Addr) bool { return a.IsLoopback() }}}
}

// wormholes allocates and joins a code on the reference mailbox server, both
// sides announcing ICE.
func wormholes(t *testing.T, url string) (a, b *wormhole.Wormhole) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := wormhole.Config{URL: url, AppVersions: peer.AppVersions()}
	a, err := wormhole.Allocate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSoon(a) })
	b, err = wormhole.Join(ctx, cfg, a.Code().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSoon(b) })
	return a, b
}

func closeSoon(w *wormhole.Wormhole) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w.Close(ctx)
}

// TestDialAccept: two peers on loopback find each other through the
// reference mailbox server, connect with ICE and QUIC (each checking the
// other's certificate fingerprint), and echo 1 MiB over a stream.
func TestDialAccept(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, before) })
	mb := refpeers.StartMailbox(t)
	wa, wb := wormholes(t, mb.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, w := range []*wormhole.Wormhole{wa, wb} {
		v, err := w.PeerAppVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !peer.Supported(v) {
			t.Fatalf("peer versions %s do not say ICE", v)
		}
	}
	type result struct {
		c   *peer.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := peer.Accept(ctx, wb, loopbackConfig(), nil)
		accepted <- result{c, err}
	}()
	ca, err := peer.Dial(ctx, wa, loopbackConfig())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer ca.Close()
	r := <-accepted
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	cb := r.c
	defer cb.Close()
	t.Logf("dialer path %v, acceptor path %v", ca.Path(), cb.Path())
	if k := ca.Path().Kind(); k != "direct" {
		t.Errorf("path %s, want direct", k)
	}

	data := make([]byte, 1<<20)
	rand.Read(data)
	echoed := make(chan error, 1)
	go func() {
		s, err := cb.QUIC().AcceptStream(ctx)
		if err != nil {
			echoed <- err
			return
		}
		_, err = io.Copy(s, s)
		s.Close()
		echoed <- err
	}()
	s, err := ca.QUIC().OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() { s.Write(data); s.Close() }()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, not the %d sent", len(got), len(data))
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
}
