package wormhole

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestParseServerMessage(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"welcome", `{"type":"welcome","welcome":{"motd":"hi"}}`, true},
		{"welcome without object", `{"type":"welcome"}`, false},
		{"message", `{"type":"message","side":"ab","phase":"0","body":"00ff","id":"x"}`, true},
		{"message bad hex", `{"type":"message","side":"ab","phase":"0","body":"zz"}`, false},
		{"message no phase", `{"type":"message","side":"ab","body":""}`, false},
		{"claimed", `{"type":"claimed","mailbox":"m"}`, true},
		{"claimed empty", `{"type":"claimed"}`, false},
		{"allocated", `{"type":"allocated","nameplate":"3"}`, true},
		{"error", `{"type":"error","error":"crowded","orig":{"type":"claim","id":"1"}}`, true},
		{"ice", `{"type":"icebreaker-ice-servers","ice_servers":[{"urls":["stun:h:3478"]},{"urls":["turn:h:3478?transport=udp"],"username":"u","credential":"c"}],"ttl":300}`, true},
		{"ice without urls", `{"type":"icebreaker-ice-servers","ice_servers":[{}]}`, false},
		{"unknown type", `{"type":"pong","pong":1}`, true},
		{"no type", `{"welcome":{}}`, false},
		{"not json", `{`, false},
		{"wrong field type", `{"type":"claimed","mailbox":7}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseServerMessage([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseServerMessage = %+v, %v; want ok=%v", m, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadServerMessage) {
				t.Fatalf("%v does not wrap ErrBadServerMessage", err)
			}
		})
	}
	m, _ := ParseServerMessage([]byte(`{"type":"error","error":"unknown type","orig":{"type":"icebreaker-ice-servers","id":"7"}}`))
	if o := m.origOf(); o.Type != "icebreaker-ice-servers" || o.ID != "7" {
		t.Errorf("origOf = %+v", o)
	}
}

// FuzzParseServerMessage: decoding never panics; what it accepts encodes
// and decodes to the same message.
func FuzzParseServerMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"welcome","welcome":{"motd":"hi"}}`,
		`{"type":"message","side":"ab","phase":"0","body":"00ff"}`,
		`{"type":"error","error":"crowded","orig":{"type":"claim"}}`,
		`{"type":"icebreaker-ice-servers","ice_servers":[{"urls":["stun:h:1"]}],"ttl":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseServerMessage(b)
		if err != nil {
			return
		}
		_ = m.origOf()
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", m, err)
		}
		again, err := ParseServerMessage(enc)
		if err != nil {
			t.Fatalf("re-encoded %s does not parse: %v", enc, err)
		}
		if again.Type != m.Type || !bytes.Equal(again.Body, m.Body) || again.Phase != m.Phase {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

func TestSealOpen(t *testing.T) {
	key := DeriveKey([]byte("k"), "p")
	box := seal(key, []byte("hello"))
	if got, err := open(key, box); err != nil || string(got) != "hello" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := open(DeriveKey([]byte("k"), "q"), box); err == nil {
		t.Fatal("opened with the wrong key")
	}
	if _, err := open(key, box[:10]); err == nil {
		t.Fatal("opened a truncated box")
	}
	if bytes.Equal(phaseKey(key, "a", "0"), phaseKey(key, "b", "0")) || bytes.Equal(phaseKey(key, "a", "0"), phaseKey(key, "a", "1")) {
		t.Fatal("phase keys do not depend on side and phase")
	}
}
