package spake2

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"

	"filippo.io/edwards25519"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// vector is one line of testdata/vectors.jsonl, made by
// testdata/gen_vectors.py with python3-spake2 0.8.
type vector struct {
	Name      string `json:"name"`
	PasswordA string `json:"password_a"`
	PasswordB string `json:"password_b"`
	Identity  string `json:"identity"`
	EntropyA  string `json:"entropy_a"`
	EntropyB  string `json:"entropy_b"`
	MsgA      string `json:"msg_a"`
	MsgB      string `json:"msg_b"`
	KeyA      string `json:"key_a"`
	KeyB      string `json:"key_b"`
}

func loadVectors(t testing.TB, data []byte) []vector {
	t.Helper()
	var vs []vector
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var v vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("vector %q: %v", sc.Text(), err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectors replays python3-spake2's fixed randomness and checks both
// messages and both keys byte for byte.
func TestVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range loadVectors(t, data) {
		t.Run(v.Name, func(t *testing.T) {
			id := unhex(t, v.Identity)
			a, err := Start(unhex(t, v.PasswordA), id, bytes.NewReader(unhex(t, v.EntropyA)))
			if err != nil {
				t.Fatal(err)
			}
			b, err := Start(unhex(t, v.PasswordB), id, bytes.NewReader(unhex(t, v.EntropyB)))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(a.Message()); got != v.MsgA {
				t.Errorf("message A = %s, python %s", got, v.MsgA)
			}
			if got := hex.EncodeToString(b.Message()); got != v.MsgB {
				t.Errorf("message B = %s, python %s", got, v.MsgB)
			}
			ka, err := a.Finish(unhex(t, v.MsgB))
			if err != nil {
				t.Fatal(err)
			}
			kb, err := b.Finish(unhex(t, v.MsgA))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(ka); got != v.KeyA {
				t.Errorf("key A = %s, python %s", got, v.KeyA)
			}
			if got := hex.EncodeToString(kb); got != v.KeyB {
				t.Errorf("key B = %s, python %s", got, v.KeyB)
			}
			if same := bytes.Equal(ka, kb); same != (v.PasswordA == v.PasswordB) {
				t.Errorf("keys equal = %v with passwords %s and %s", same, v.PasswordA, v.PasswordB)
			}
		})
	}
}

// TestVectorsRegenerate runs testdata/gen_vectors.py with the installed
// python3-spake2 and checks that it still prints testdata/vectors.jsonl.
func TestVectorsRegenerate(t *testing.T) {
	py := testutil.RequireBinary(t, "/usr/bin/python3")
	if err := exec.Command(py, "-c", "import spake2").Run(); err != nil {
		testutil.Unavailable(t, "python3-spake2 is not installed (%v)", err)
	}
	out, err := testutil.Command(t.Context(), py, "testdata/gen_vectors.py").Output()
	if err != nil {
		t.Fatalf("gen_vectors.py: %v", err)
	}
	want, err := os.ReadFile("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("python3-spake2 now prints\n%s\ntestdata/vectors.jsonl holds\n%s", out, want)
	}
}

// TestBlindingElement pins S against python-spake2's
// ParamsEd25519.S.to_bytes().
func TestBlindingElement(t *testing.T) {
	got := hex.EncodeToString(blinding().Bytes())
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testutil.Unavailable(t, "no %s to compute S", py)
	}
	out, err := testutil.Command(t.Context(), py, "-c",
		"from spake2.parameters.ed25519 import ParamsEd25519 as P; print(P.S.to_bytes().hex())").Output()
	if err != nil {
		testutil.Unavailable(t, "python3-spake2 is not installed (%v)", err)
	}
	if py := string(bytes.TrimSpace(out)); got != py {
		t.Fatalf("S = %s, python3-spake2 %s", got, py)
	}
}

func TestRoundTripRandom(t *testing.T) {
	for range 4 {
		a, _ := Start([]byte("3-x-y"), []byte("id"), rand.Reader)
		b, _ := Start([]byte("3-x-y"), []byte("id"), rand.Reader)
		ka, err := a.Finish(b.Message())
		if err != nil {
			t.Fatal(err)
		}
		kb, err := b.Finish(a.Message())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ka, kb) {
			t.Fatal("keys differ with the same password")
		}
	}
}

func TestFinishRejects(t *testing.T) {
	a, _ := Start([]byte("pw"), nil, rand.Reader)
	identity := append([]byte{'S'}, edwards25519.NewIdentityPoint().Bytes()...)
	// A point of order 8 (low order, outside the prime-order subgroup).
	lowOrder := unhex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	// A point of order 8·L: the generator plus a low-order point.
	lo, _ := new(edwards25519.Point).SetBytes(lowOrder)
	mixed := new(edwards25519.Point).Add(edwards25519.NewGeneratorPoint(), lo)
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"short", []byte("S"), ErrBadMessage},
		{"side A", append([]byte{'A'}, a.Message()[1:]...), ErrBadMessage},
		{"identity", identity, ErrBadMessage},
		{"low order", append([]byte{'S'}, lowOrder...), ErrBadMessage},
		{"wrong subgroup", append([]byte{'S'}, mixed.Bytes()...), ErrBadMessage},
		{"reflection", a.Message(), ErrReflection},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := Start([]byte("pw"), nil, rand.Reader)
			if tc.name == "reflection" {
				s = a
				a, _ = Start([]byte("pw"), nil, rand.Reader)
			}
			if _, err := s.Finish(tc.msg); !errors.Is(err, tc.want) {
				t.Fatalf("Finish = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzParseMessage: decoding never panics, and what it accepts is in the
// group and encodes back to a point that parses again.
func FuzzParseMessage(f *testing.F) {
	data, _ := os.ReadFile("testdata/vectors.jsonl")
	for _, v := range loadVectors(f, data) {
		f.Add(unhex(f, v.MsgA))
	}
	f.Add([]byte("S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		again := append([]byte{'S'}, p.Bytes()...)
		if _, err := ParseMessage(again); err != nil {
			t.Fatalf("re-encoded %x does not parse: %v", again, err)
		}
	})
}
