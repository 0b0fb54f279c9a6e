package wormhole

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		in, nameplate, password string
		ok                      bool
	}{
		{"7-crossover-clockwork", "7", "7-crossover-clockwork", true},
		{"  12-a-b\n", "12", "12-a-b", true},
		{"3-one", "3", "3-one", true},
		// NFC: "e" + combining acute becomes "é".
		{"4-cafe\u0301-x", "4", "4-caf\u00e9-x", true},
		{"", "", "", false},
		{"7", "", "", false},
		{"7-", "", "", false},
		{"x-a-b", "", "", false},
		{"-a-b", "", "", false},
		{"7--b", "", "", false},
		{"7-a b-c", "", "", false},
		{"12345678901-a-b", "", "", false},
	} {
		c, err := ParseCode(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseCode(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadCode) {
				t.Errorf("ParseCode(%q): %v does not wrap ErrBadCode", tc.in, err)
			}
			continue
		}
		if c.Nameplate != tc.nameplate || c.Password != tc.password {
			t.Errorf("ParseCode(%q) = %+v", tc.in, c)
		}
	}
}

func TestGenerateCode(t *testing.T) {
	// Byte 0x00 is "adroitness" in the odd list and "aardvark" in the
	// even list; 0xff "yucatan" and "zulu".
	c, err := GenerateCode("5", 4, bytes.NewReader([]byte{0, 0, 0xff, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "5-adroitness-aardvark-yucatan-zulu"; c.String() != want {
		t.Fatalf("GenerateCode = %s, want %s", c, want)
	}
	for range 20 {
		c, err := GenerateCode("42", 2, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := ParseCode(c.String()); err != nil || p != c || strings.Count(c.String(), "-") != 2 {
			t.Fatalf("generated %q parses as %+v, %v", c, p, err)
		}
	}
	if _, err := GenerateCode("1", 0, rand.Reader); err == nil {
		t.Error("a code without words was generated")
	}
}

func TestWordList(t *testing.T) {
	wl := pgpWords()
	seen := map[string]bool{}
	for i := range 256 {
		for _, w := range []string{wl.even[i], wl.odd[i]} {
			if w == "" || seen[w] || strings.ContainsAny(w, "- ") {
				t.Fatalf("word %q for byte %d is empty, repeated or has a separator", w, i)
			}
			seen[w] = true
		}
	}
}

// FuzzParseCode: parsing never panics, and an accepted code is stable
// under parsing its own text again.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"7-crossover-clockwork", "4-cafe\u0301-x", "x", "7--", "1-\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		again, err := ParseCode(c.String())
		if err != nil || again != c {
			t.Fatalf("%q parsed as %+v, which parses as %+v, %v", s, c, again, err)
		}
	})
}
