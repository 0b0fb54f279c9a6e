package transfer

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseOffer(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Offer
	}{
		{"file", `{"file":{"filename":"a.bin","filesize":12}}`, Offer{Kind: File, Name: "a.bin", Size: 12}},
		{"empty file", `{"file":{"filename":"e","filesize":0}}`, Offer{Kind: File, Name: "e"}},
		{"directory", `{"directory":{"mode":"zipfile/deflated","dirname":"d","zipsize":300,"numbytes":1000,"numfiles":3}}`,
			Offer{Kind: Directory, Name: "d", Size: 300, NumBytes: 1000, NumFiles: 3}},
		{"unknown keys", `{"file":{"filename":"ü","filesize":1,"x":2},"y":3}`, Offer{Kind: File, Name: "ü", Size: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOffer([]byte(tc.in))
			if err != nil || got != tc.want {
				t.Fatalf("ParseOffer = %+v, %v; want %+v", got, err, tc.want)
			}
			b, _ := json.Marshal(got)
			again, err := ParseOffer(b)
			if err != nil || again != got {
				t.Fatalf("%s parses as %+v, %v", b, again, err)
			}
		})
	}
	if _, err := ParseOffer([]byte(`{"message":"hi"}`)); !errors.Is(err, ErrText) {
		t.Errorf("text offer: %v, want ErrText", err)
	}
	for name, bad := range map[string]string{
		"not json":       `{`,
		"nothing":        `{}`,
		"no size":        `{"file":{"filename":"a"}}`,
		"negative":       `{"file":{"filename":"a","filesize":-1}}`,
		"path":           `{"file":{"filename":"../etc/passwd","filesize":1}}`,
		"absolute":       `{"file":{"filename":"/etc/passwd","filesize":1}}`,
		"dotdot":         `{"directory":{"mode":"zipfile/deflated","dirname":"..","zipsize":1,"numbytes":1,"numfiles":1}}`,
		"backslash":      `{"file":{"filename":"a\\b","filesize":1}}`,
		"control":        `{"file":{"filename":"a\nb","filesize":1}}`,
		"mode":           `{"directory":{"mode":"tarball","dirname":"d","zipsize":1,"numbytes":1,"numfiles":1}}`,
		"missing fields": `{"directory":{"mode":"zipfile/deflated","dirname":"d"}}`,
		"size as string": `{"file":{"filename":"a","filesize":"1"}}`,
	} {
		if o, err := ParseOffer([]byte(bad)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: ParseOffer(%s) = %+v, %v; want ErrBadMessage", name, bad, o, err)
		}
	}
}

// FuzzParseOffer: never panics; an accepted offer has a safe name and
// encodes to an offer that parses to itself.
func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(`{"file":{"filename":"a.bin","filesize":12}}`))
	f.Add([]byte(`{"directory":{"mode":"zipfile/deflated","dirname":"d","zipsize":300,"numbytes":1000,"numfiles":3}}`))
	f.Add([]byte(`{"message":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOffer(b)
		if err != nil {
			return
		}
		if checkName(o.Name) != nil || o.Size < 0 {
			t.Fatalf("accepted %+v", o)
		}
		enc, _ := json.Marshal(o)
		again, err := ParseOffer(enc)
		if err != nil || again != o {
			t.Fatalf("%s re-parsed as %+v, %v", enc, again, err)
		}
	})
}

// FuzzParseMessage: a message of the protocol never makes the parser
// panic.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"transit":{"abilities-v1":[{"type":"relay-v1"}],"hints-v1":[]},"answer":{"file_ack":"ok"}}`))
	f.Add([]byte(`{"error":"no"}`))
	f.Add([]byte(`{"offer":{"file":{"filename":"a","filesize":1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := parseMessage(b)
		if err == nil && m.Offer != nil {
			_, _ = ParseOffer(m.Offer)
		}
	})
}
