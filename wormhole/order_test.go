package wormhole

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

// TestReorderAndDedup feeds the session the peer's numbered phases out of
// order and repeated, as a server that neither orders nor de-duplicates
// may deliver them (and as a replay after reconnecting does): Receive
// returns each once, in phase order.
func TestReorderAndDedup(t *testing.T) {
	w := &Wormhole{cfg: Config{}.withDefaults(), side: "us", changed: make(chan struct{})}
	w.st.processed = map[string]bool{}
	w.st.inbound = map[int][]byte{}
	w.st.key = DeriveKey([]byte("session"), "test")
	w.st.peerSide = "them"
	w.st.releaseSent = true
	msg := func(phase string) *ServerMessage {
		box := seal(phaseKey(w.st.key, "them", phase), []byte("m"+phase))
		return &ServerMessage{Type: "message", Side: "them", Phase: phase, BodyHex: hex.EncodeToString(box), Body: box}
	}
	w.mu.Lock()
	for _, p := range []string{"2", "0", "version", "2", "1", "0", "01", "x"} {
		w.handleLocked(msg(p))
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		got, err := w.Receive(ctx)
		if err != nil || string(got) != fmt.Sprintf("m%d", i) {
			t.Fatalf("Receive %d = %q, %v", i, got, err)
		}
	}
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if got, err := w.Receive(short); err == nil {
		t.Fatalf("a fourth message %q: duplicates or non-canonical phases were delivered", got)
	}
	if !w.st.verified {
		t.Error("the version that opened did not confirm the key")
	}
	// A box that does not open is a wrong code.
	w.mu.Lock()
	bad := msg("3")
	bad.Body[len(bad.Body)-1] ^= 1
	w.handleLocked(bad)
	err := w.fatal
	w.mu.Unlock()
	if err != ErrWrongCode {
		t.Fatalf("a box that does not open: %v, want ErrWrongCode", err)
	}
}
