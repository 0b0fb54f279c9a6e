package peer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
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
	ca, cb := connected(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
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
	// The dialer closes: the acceptor's next ReceiveOffer says so, as
	// ErrPeerClosed, not as a failure.
	ca.Close()
	if _, err := cb.ReceiveOffer(ctx); !errors.Is(err, peer.ErrPeerClosed) {
		t.Errorf("ReceiveOffer after the peer closed: %v, want ErrPeerClosed", err)
	}
}

// connected returns two peers on loopback (dialer, acceptor) that found
// each other through the reference mailbox server (both announcing ICE),
// and connected with ICE and QUIC, each checking the other's certificate
// fingerprint.
func connected(t *testing.T) (*peer.Conn, *peer.Conn) {
	t.Helper()
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
	r := <-accepted
	if err != nil || r.err != nil {
		t.Fatalf("Dial: %v, Accept: %v", err, r.err)
	}
	t.Cleanup(func() { ca.Close(); r.c.Close() })
	return ca, r.c
}

// TestTransfers: over one connection, a streamed file (unknown size), a
// directory, and a file whose receiver holds a part of it: a good prefix
// resumes (only the rest crosses), a wrong one starts over; each time the
// two ends agree on the whole file's SHA-256.
func TestTransfers(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, before) })
	ca, cb := connected(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := make([]byte, 300_000)
	rand.Read(data)
	sum := sha256.Sum256(data)

	// receive runs the receiving end of one transfer in the background.
	receive := func(accept func(in *peer.Incoming) (peer.Result, error)) <-chan error {
		errc := make(chan error, 1)
		go func() {
			in, err := cb.ReceiveOffer(ctx)
			if err == nil {
				_, err = accept(in)
			}
			errc <- err
		}()
		return errc
	}

	t.Run("stream", func(t *testing.T) {
		var got bytes.Buffer
		errc := receive(func(in *peer.Incoming) (peer.Result, error) {
			if !in.Offer.Stream || in.Offer.Size != 0 {
				t.Errorf("offer %+v, want a stream", in.Offer)
			}
			return in.Accept(ctx, &got, nil)
		})
		res, err := ca.SendFile(ctx, peer.Offer{Name: "s", Stream: true}, io.MultiReader(bytes.NewReader(data)), peer.SendOptions{})
		if rerr := <-errc; err != nil || rerr != nil {
			t.Fatalf("send: %v, receive: %v", err, rerr)
		}
		if !bytes.Equal(got.Bytes(), data) || !bytes.Equal(res.SHA256, sum[:]) || res.Bytes != int64(len(data)) {
			t.Fatalf("got %d bytes, result %+v", got.Len(), res)
		}
	})

	t.Run("directory", func(t *testing.T) {
		src, dst := t.TempDir(), t.TempDir()
		os.MkdirAll(filepath.Join(src, "a", "empty"), 0o755)
		os.WriteFile(filepath.Join(src, "a", "f"), data, 0o640)
		sroot, _ := os.OpenRoot(src)
		defer sroot.Close()
		droot, _ := os.OpenRoot(dst)
		defer droot.Close()
		tree, err := peer.ScanDir(sroot)
		if err != nil || tree.Files != 1 || tree.Dirs != 2 || tree.Size != int64(len(data)) {
			t.Fatalf("ScanDir: %+v, %v", tree, err)
		}
		var recvRes peer.Result
		errc := receive(func(in *peer.Incoming) (peer.Result, error) {
			var err error
			recvRes, err = in.AcceptDir(ctx, droot, nil)
			return recvRes, err
		})
		res, err := ca.SendDir(ctx, tree.Offer("t", 0o755), tree, peer.SendOptions{})
		if rerr := <-errc; err != nil || rerr != nil {
			t.Fatalf("send: %v, receive: %v", err, rerr)
		}
		if !bytes.Equal(res.SHA256, recvRes.SHA256) {
			t.Errorf("hashes %x and %x", res.SHA256, recvRes.SHA256)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, "a", "f")); !bytes.Equal(b, data) {
			t.Errorf("a/f has %d bytes", len(b))
		}
		if fi, err := os.Stat(filepath.Join(dst, "a", "empty")); err != nil || !fi.IsDir() {
			t.Errorf("a/empty: %v", err)
		}
	})

	for _, tc := range []struct {
		name   string
		part   []byte
		offset int64
	}{
		{"resume", data[:123_456], 123_456},
		{"all there", data, int64(len(data))},
		{"wrong part", append([]byte("not the file"), data[12:100_000]...), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "part"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.Write(tc.part)
			var recvRes peer.Result
			errc := receive(func(in *peer.Incoming) (peer.Result, error) {
				var err error
				recvRes, err = in.AcceptFile(ctx, f, nil)
				return recvRes, err
			})
			res, err := ca.SendFile(ctx, peer.Offer{Name: "f", Size: int64(len(data))}, bytes.NewReader(data), peer.SendOptions{})
			if rerr := <-errc; err != nil || rerr != nil {
				t.Fatalf("send: %v, receive: %v", err, rerr)
			}
			want := peer.Result{SHA256: sum[:], Offset: tc.offset, Bytes: int64(len(data)) - tc.offset}
			for who, r := range map[string]peer.Result{"sender": res, "receiver": recvRes} {
				if !bytes.Equal(r.SHA256, want.SHA256) || r.Offset != want.Offset || r.Bytes != want.Bytes {
					t.Errorf("%s: %+v, want %+v", who, r, want)
				}
			}
			if b, _ := os.ReadFile(f.Name()); !bytes.Equal(b, data) {
				t.Errorf("the file has %d bytes, not the data", len(b))
			}
		})
	}
}
