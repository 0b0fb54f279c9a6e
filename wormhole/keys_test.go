package wormhole

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// TestKeysMatchPython derives the phase, verifier and transit keys from a
// fixed session key with magic-wormhole's own functions and with ours.
func TestKeysMatchPython(t *testing.T) {
	// (refpeers would import this package: an import cycle.)
	py := testutil.RequireBinary(t, "/usr/bin/python3")
	key := []byte("0123456789abcdef0123456789abcdef")
	out, err := testutil.Command(t.Context(), py, "-c", `
from wormhole._key import derive_phase_key, derive_key
k = b"0123456789abcdef0123456789abcdef"
print(derive_phase_key(k, "d840852cc1", "version").hex())
print(derive_phase_key(k, "d840852cc1", "0").hex())
print(derive_key(k, b"wormhole:verifier").hex())
print(derive_key(k, b"lothar.com/wormhole/text-or-file-xfer/transit-key").hex())
`).Output()
	if err != nil {
		testutil.Unavailable(t, "magic-wormhole's Python module is not usable: %v", err)
	}
	want := strings.Fields(string(out))
	got := []string{
		hex.EncodeToString(phaseKey(key, "d840852cc1", "version")),
		hex.EncodeToString(phaseKey(key, "d840852cc1", "0")),
		hex.EncodeToString(DeriveKey(key, purposeVerifier)),
		hex.EncodeToString(DeriveKey(key, purposeTransit)),
	}
	if len(want) != len(got) {
		t.Fatalf("python printed %q", out)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("key %d: ours %s, magic-wormhole %s", i, got[i], want[i])
		}
	}
}
