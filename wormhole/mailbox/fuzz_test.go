package mailbox

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeRequest: the decoder never panics, and what it accepts
// re-encodes to a request that decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"bind","appid":"lothar.com/wormhole/text-or-file-xfer","side":"d840852cc1","client_version":["python","0.12.0"],"id":"1"}`,
		`{"type":"claim","nameplate":"6","id":"x"}`, `{"type":"add","phase":"pake","body":"0a0b"}`,
		`{"type":"close","mailbox":"vp2najge7mcqc","mood":"happy"}`, `{"type":"ping","ping":17}`,
		`{"type":"icebreaker-ice-servers","token":"t"}`, `[]`, `null`, `{"type":5}`, `{"type":"a","id":{"deep":[1,2]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			return
		}
		if r.Type == "" {
			t.Fatal("accepted without a type")
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		r2, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("decode of %s: %v", again, err)
		}
		if !reflect.DeepEqual(normalize(r), normalize(r2)) {
			t.Fatalf("round trip:\n%+v\n%+v", r, r2)
		}
		_ = orig(b)
	})
}

// normalize compacts the raw JSON fields, which Marshal re-indents, and
// makes an absent one (which Marshal writes as null) null.
func normalize(r request) request {
	for _, p := range []*json.RawMessage{&r.ID, &r.Ping, &r.ClientVersion} {
		if *p == nil {
			*p = json.RawMessage("null")
		} else {
			var v any
			json.Unmarshal(*p, &v)
			*p, _ = json.Marshal(v)
		}
	}
	return r
}
