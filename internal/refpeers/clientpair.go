package refpeers

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/wormhole"
)

// ClientPair runs a whole exchange of two of this module's clients through
// the mailbox server at url (any server: the reference one, or ours):
// allocate, join with the code, confirm the key, compare verifiers, send
// three messages each way and check their order, and close happily. It
// fails t on any deviation.
func ClientPair(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := wormhole.Config{URL: url, AppVersions: map[string]any{"test": true}}
	a, err := wormhole.Allocate(ctx, cfg)
	if err != nil {
		t.Fatalf("Allocate on %s: %v", url, err)
	}
	defer a.Close(ctx)
	b, err := wormhole.Join(ctx, cfg, a.Code().String())
	if err != nil {
		t.Fatalf("Join %s on %s: %v", a.Code(), url, err)
	}
	defer b.Close(ctx)
	for i := range 3 {
		if err := a.Send(ctx, fmt.Appendf(nil, "a%d", i)); err != nil {
			t.Fatalf("a.Send: %v", err)
		}
		if err := b.Send(ctx, fmt.Appendf(nil, "b%d", i)); err != nil {
			t.Fatalf("b.Send: %v", err)
		}
	}
	for i := range 3 {
		if got, err := b.Receive(ctx); err != nil || string(got) != fmt.Sprintf("a%d", i) {
			t.Fatalf("b.Receive = %q, %v; want a%d", got, err, i)
		}
		if got, err := a.Receive(ctx); err != nil || string(got) != fmt.Sprintf("b%d", i) {
			t.Fatalf("a.Receive = %q, %v; want b%d", got, err, i)
		}
	}
	va, err := a.Verifier(ctx)
	if err != nil {
		t.Fatalf("a.Verifier: %v", err)
	}
	vb, err := b.Verifier(ctx)
	if err != nil {
		t.Fatalf("b.Verifier: %v", err)
	}
	if !bytes.Equal(va, vb) || len(va) != wormhole.KeySize {
		t.Fatalf("verifiers differ: %x and %x", va, vb)
	}
	if v, err := b.PeerAppVersions(ctx); err != nil || string(v) != `{"test":true}` {
		t.Fatalf("PeerAppVersions = %s, %v", v, err)
	}
	ka, _ := a.TransitKey(ctx)
	kb, _ := b.TransitKey(ctx)
	if !bytes.Equal(ka, kb) {
		t.Fatalf("transit keys differ")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("a.Close: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("b.Close: %v", err)
	}
}

// ICEServers asks the mailbox server at url for ICE servers with our client
// (wormhole.Wormhole.ICEServers) on a freshly allocated nameplate, which it
// closes afterwards, and returns the answer. A plain server makes it return
// an error wrapping wormhole.ErrICENotOffered.
func ICEServers(t testing.TB, url, token string) ([]wormhole.ICEServer, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := wormhole.Allocate(ctx, wormhole.Config{URL: url})
	if err != nil {
		t.Fatalf("Allocate on %s: %v", url, err)
	}
	defer w.Close(ctx)
	return w.ICEServers(ctx, token)
}
