package turnserver

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// records returns the JSON log records with message msg.
func (w *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(w.b.Bytes()) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestUsageRecords: an allocation logs one Info record when it is created
// and one when it ends, with the user, the relayed address, the reason
// and what it relayed each way, which an operator meters from.
func TestUsageRecords(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	c := dialClient(t, "udp", e.udp, "alice")
	m := c.do(stun.MethodAllocate, transport(turn.ProtoUDP))
	c.checkOK(m)
	relayed, err := m.XORAddress(stun.AttrXORRelayedAddress)
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, loop4)
	c.permit(p.addr())
	c.send(p.addr(), []byte("12345")) // 5 bytes to the peer
	if got, _ := p.recv(); string(got) != "12345" {
		t.Fatalf("peer got %q", got)
	}
	p.sendTo(relayed, []byte("1234567")) // 7 bytes to the client
	if r := c.recv(); string(r.data) != "1234567" {
		t.Fatalf("client got %+v", r)
	}
	e.clock.Advance(3 * time.Second)
	c.checkOK(c.do(stun.MethodRefresh, lifetime(0)))

	created := logs.records(t, "turn allocation created")
	if len(created) != 1 || created[0]["user"] != "alice" || created[0]["transport"] != "udp" {
		t.Fatalf("creation records %v", created)
	}
	ended := logs.records(t, "turn allocation ended")
	if len(ended) != 1 {
		t.Fatalf("%d end records, want 1: %v", len(ended), ended)
	}
	rec := ended[0]
	want := map[string]any{
		"level": "INFO", "user": "alice", "client": c.local().String(), "transport": "udp",
		"to_peer_packets": 1.0, "to_peer_bytes": 5.0, "to_client_packets": 1.0, "to_client_bytes": 7.0,
		"dropped_quota": 0.0, "send_errors": 0.0,
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("end record %s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
	if relays, ok := rec["relay"].([]any); !ok || len(relays) != 1 || relays[0] != relayed.String() {
		t.Errorf("end record relay = %v, want [%v]", rec["relay"], relayed)
	}
	if rec["reason"] != "refreshed with lifetime 0" {
		t.Errorf("end record reason = %v, want the Refresh with LIFETIME 0", rec["reason"])
	}
	if d, ok := rec["duration"].(float64); !ok || time.Duration(d) != 3*time.Second {
		t.Errorf("end record duration = %v, want 3s on the fake clock", rec["duration"])
	}
}
