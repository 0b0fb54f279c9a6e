package stun

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"
)

// request builds a typical authenticated request body without integrity.
func request(t testing.TB) []byte {
	t.Helper()
	b := AppendHeader(make([]byte, 0, 512), BindingRequest, testID)
	b = AppendAttrString(b, AttrUsername, "alice")
	b = AppendAttrString(b, AttrRealm, "example.org")
	b = AppendAttrString(b, AttrNonce, "obMatJos2AAAB-nonce")
	return b
}

func TestMessageIntegrity(t *testing.T) {
	key := []byte("secret key")
	b := AppendMessageIntegrity(request(t), key)
	m := mustParse(t, b)
	if err := m.CheckIntegrity(key); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckIntegrity([]byte("wrong")); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("wrong key: %v", err)
	}
	// Independent computation: HMAC-SHA1 over the message up to MI, with
	// the length counting MI.
	mac := hmac.New(sha1.New, key)
	mac.Write(b[:len(b)-24])
	if want := mac.Sum(nil); !bytes.Equal(want, b[len(b)-20:]) {
		t.Fatalf("MESSAGE-INTEGRITY %x, want %x", b[len(b)-20:], want)
	}
	// Any flipped bit before MI breaks it.
	for i := 0; i < len(b)-24; i++ {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		var m Message
		if m.Parse(c) != nil {
			continue
		}
		if err := m.CheckIntegrity(key); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	// A MESSAGE-INTEGRITY of the wrong size.
	bad := mustParse(t, AppendAttr(request(t), AttrMessageIntegrity, make([]byte, 16)))
	if err := bad.CheckIntegrity(key); !errors.Is(err, ErrMalformed) {
		t.Fatalf("16-byte MI: %v", err)
	}
}

func TestMessageIntegritySHA256(t *testing.T) {
	key := []byte("another key")
	t.Run("full", func(t *testing.T) {
		b := AppendMessageIntegritySHA256(request(t), key)
		m := mustParse(t, b)
		if err := m.CheckIntegritySHA256(key); err != nil {
			t.Fatal(err)
		}
		if err := m.CheckIntegritySHA256([]byte("wrong")); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("wrong key: %v", err)
		}
		if err := m.CheckIntegrity(key); !errors.Is(err, ErrAttrNotFound) {
			t.Fatalf("CheckIntegrity without MI: %v", err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(b[:len(b)-36])
		if want := mac.Sum(nil); !bytes.Equal(want, b[len(b)-32:]) {
			t.Fatalf("MESSAGE-INTEGRITY-SHA256 %x, want %x", b[len(b)-32:], want)
		}
	})
	// RFC 8489, Section 14.6: the value may be truncated to 16..32 bytes in
	// steps of 4; anything else is invalid.
	for n := 4; n <= 36; n += 2 {
		valid := n >= 16 && n <= 32 && n%4 == 0
		t.Run(fmt.Sprintf("truncated to %d", n), func(t *testing.T) {
			b := appendTruncatedMI256(request(t), key, n)
			b = AppendFingerprint(b)
			m := mustParse(t, b)
			err := m.CheckIntegritySHA256(key)
			if !valid {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("CheckIntegritySHA256 = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.CheckIntegritySHA256([]byte("wrong")); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("wrong key: %v", err)
			}
			if err := m.CheckFingerprint(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// appendTruncatedMI256 writes MESSAGE-INTEGRITY-SHA256 truncated to n
// bytes, computed here with crypto/hmac rather than by the package.
func appendTruncatedMI256(b, key []byte, n int) []byte {
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-HeaderSize+4+pad4(n)))
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	sum := mac.Sum(nil)
	for len(sum) < n {
		sum = append(sum, 0)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(AttrMessageIntegritySHA256))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, sum[:n]...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestAllIntegrityAttributes(t *testing.T) {
	key := []byte("k")
	b := AppendMessageIntegrity(request(t), key)
	b = AppendMessageIntegritySHA256(b, key)
	b = AppendFingerprint(b)
	m := mustParse(t, b)
	want := []AttrType{AttrUsername, AttrRealm, AttrNonce, AttrMessageIntegrity, AttrMessageIntegritySHA256, AttrFingerprint}
	if got := attrTypes(m); !sameTypes(got, want) {
		t.Fatalf("Attrs = %v", got)
	}
	if err := m.CheckIntegrity(key); err != nil {
		t.Fatalf("MI: %v", err)
	}
	if err := m.CheckIntegritySHA256(key); err != nil {
		t.Fatalf("MI-SHA256: %v", err)
	}
	if err := m.CheckFingerprint(); err != nil {
		t.Fatalf("FINGERPRINT: %v", err)
	}
	// Independent FINGERPRINT: CRC-32 of everything before it, XOR "STUN".
	if want := crc32.ChecksumIEEE(b[:len(b)-8]) ^ 0x5354554e; binary.BigEndian.Uint32(b[len(b)-4:]) != want {
		t.Fatalf("FINGERPRINT %x, want %08x", b[len(b)-4:], want)
	}
	// MI-SHA256 covers MI: change one MI byte.
	c := bytes.Clone(b)
	c[len(c)-8-36-1] ^= 0xff
	mc := mustParse(t, c)
	if err := mc.CheckIntegrity(key); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("MI after tampering: %v", err)
	}
	if err := mc.CheckIntegritySHA256(key); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("MI-SHA256 after tampering with MI: %v", err)
	}
	if err := mc.CheckFingerprint(); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("FINGERPRINT after tampering: %v", err)
	}
}

// TestIgnoredAfterIntegrity: an attribute appended after MESSAGE-INTEGRITY
// is ignored and does not disturb the checks. RFC 8489, Section 14.5.
func TestIgnoredAfterIntegrity(t *testing.T) {
	key := []byte("k")
	b := AppendMessageIntegrity(request(t), key)
	b = AppendAttrString(b, AttrSoftware, "injected")
	b = AppendFingerprint(b)
	m := mustParse(t, b)
	if m.Has(AttrSoftware) {
		t.Fatal("SOFTWARE after MESSAGE-INTEGRITY was not ignored")
	}
	if err := m.CheckIntegrity(key); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckFingerprint(); err != nil {
		t.Fatal(err)
	}
}

func TestFingerprint(t *testing.T) {
	b := AppendFingerprint(request(t))
	m := mustParse(t, b)
	if err := m.CheckFingerprint(); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x80
		var m Message
		if m.Parse(c) != nil {
			continue
		}
		if err := m.CheckFingerprint(); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	bad := mustParse(t, rawMessage(0x0001, MagicCookie, testID, attr(AttrFingerprint, "abcdefgh")))
	if err := bad.CheckFingerprint(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("8-byte FINGERPRINT: %v", err)
	}
	// A classic message can carry FINGERPRINT too.
	cb := AppendFingerprint(AppendClassicHeader(nil, BindingRequest, 7, testID))
	if err := mustParse(t, cb).CheckFingerprint(); err != nil {
		t.Fatal(err)
	}
}

func TestLongTermKey(t *testing.T) {
	md5Key, err := LongTermKey(PasswordMD5, "user", "realm", "pass")
	if want := md5.Sum([]byte("user:realm:pass")); err != nil || !bytes.Equal(md5Key, want[:]) {
		t.Fatalf("MD5 key %x, %v; want %x", md5Key, err, want)
	}
	shaKey, err := LongTermKey(PasswordSHA256, "user", "realm", "pass")
	if want := sha256.Sum256([]byte("user:realm:pass")); err != nil || !bytes.Equal(shaKey, want[:]) {
		t.Fatalf("SHA-256 key %x, %v; want %x", shaKey, err, want)
	}
	if len(md5Key) != 16 || len(shaKey) != 32 {
		t.Fatalf("key sizes %d and %d", len(md5Key), len(shaKey))
	}
	// Realm and password go through OpaqueString; the username does not.
	k, err := LongTermKey(PasswordSHA256, "u\u00a0x", "r\u00a0x", "p\u00a0x")
	if want := sha256.Sum256([]byte("u\u00a0x:r x:p x")); err != nil || !bytes.Equal(k, want[:]) {
		t.Fatalf("prepared key %x, %v", k, err)
	}
	if _, err := LongTermKey(PasswordAlgorithm(3), "u", "r", "p"); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
	if _, err := LongTermKey(PasswordMD5, "u", "r", "bad\u00ad"); err == nil {
		t.Fatal("password OpaqueString rejects was accepted")
	}
	if _, err := LongTermKey(PasswordMD5, "u", "", "p"); err == nil {
		t.Fatal("empty realm accepted") // OpaqueString rejects the empty string
	}
	sk, err := ShortTermKey("VOkJxbRl1RmTxUk/WvJxBt")
	if err != nil || string(sk) != "VOkJxbRl1RmTxUk/WvJxBt" {
		t.Fatalf("ShortTermKey = %q, %v", sk, err)
	}
}

func loadB1(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open("testdata/rfc8489_b1.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "hex:"); ok {
			h.WriteString(strings.ReplaceAll(line, " ", ""))
		}
	}
	b, err := hex.DecodeString(h.String())
	if err != nil || len(b) != 164 {
		t.Fatalf("B.1 vector: %d bytes, %v", len(b), err)
	}
	return b
}

// TestRFC8489B1 checks the long-term SHA-256 mechanism against RFC 8489,
// Appendix B.1 (with its erratum): USERHASH, the nonce cookie,
// PASSWORD-ALGORITHM and MESSAGE-INTEGRITY-SHA256.
func TestRFC8489B1(t *testing.T) {
	b := loadB1(t)
	m := mustParse(t, b)
	if m.Type != BindingRequest || m.TransactionID != (TransactionID{0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e}) {
		t.Fatalf("header %v %x", m.Type, m.TransactionID)
	}
	const user, realm = "マトリックス", "example.org"
	uh, err := Userhash(user, realm)
	if err != nil || !bytes.Equal(must(m.Get(AttrUserhash)), uh[:]) {
		t.Fatalf("USERHASH %x, computed %x (%v)", must(m.Get(AttrUserhash)), uh, err)
	}
	if r, err := m.Realm(); err != nil || r != realm {
		t.Fatalf("REALM %q, %v", r, err)
	}
	nonce, err := m.Nonce()
	if err != nil || nonce != "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA" {
		t.Fatalf("NONCE %q, %v", nonce, err)
	}
	if f, ok := NonceFeatures(nonce); !ok || f != FeatureUsernameAnonymity {
		t.Fatalf("NonceFeatures = %06x, %v; want username anonymity alone", f, ok)
	}
	alg, err := ParsePasswordAlgorithm(must(m.Get(AttrPasswordAlgorithm)))
	if err != nil || alg.Algorithm != PasswordSHA256 || len(alg.Params) != 0 {
		t.Fatalf("PASSWORD-ALGORITHM %v, %v", alg, err)
	}
	// The password as the RFC gives it after OpaqueString processing.
	key, err := LongTermKey(alg.Algorithm, user, realm, "TheMatrIX")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckIntegritySHA256(key); err != nil {
		t.Fatalf("MESSAGE-INTEGRITY-SHA256: %v", err)
	}
	if md5Key, _ := LongTermKey(PasswordMD5, user, realm, "TheMatrIX"); m.CheckIntegritySHA256(md5Key) == nil {
		t.Fatal("the MD5 key verified a SHA-256 message")
	}

	// Rebuilt with our encoder: same bytes (the vector pads with zeros).
	r := AppendHeader(nil, BindingRequest, m.TransactionID)
	r = AppendAttr(r, AttrUserhash, uh[:])
	r = AppendAttrString(r, AttrNonce, nonce)
	r = AppendAttrString(r, AttrRealm, realm)
	r = AppendPasswordAlgorithm(r, PasswordAlgorithmParams{Algorithm: PasswordSHA256})
	r = AppendMessageIntegritySHA256(r, key)
	if !bytes.Equal(r, b) {
		t.Fatalf("rebuilt\n%x\nwant\n%x", r, b)
	}
}

func TestNonceFeatures(t *testing.T) {
	cases := []struct {
		features uint32
		enc      string
	}{
		{0, "obMatJos2AAAA"},
		{FeaturePasswordAlgorithms, "obMatJos2AAAB"},
		{FeatureUsernameAnonymity, "obMatJos2AAAC"},
		{FeaturePasswordAlgorithms | FeatureUsernameAnonymity, "obMatJos2AAAD"},
		{1 << 23, "obMatJos2gAAA"},
		{0xffffff, "obMatJos2////"},
	}
	for _, tc := range cases {
		t.Run(tc.enc, func(t *testing.T) {
			b := AppendNonceCookie([]byte("prefix:"), tc.features)
			if string(b) != "prefix:"+tc.enc {
				t.Fatalf("AppendNonceCookie = %q", b)
			}
			nonce := string(b[len("prefix:"):]) + "random-part/+="
			f, ok := NonceFeatures(nonce)
			if !ok || f != tc.features {
				t.Fatalf("NonceFeatures(%q) = %06x, %v", nonce, f, ok)
			}
			if f, ok := NonceFeatures(tc.enc); !ok || f != tc.features {
				t.Fatalf("NonceFeatures(%q) without a tail = %06x, %v", tc.enc, f, ok)
			}
		})
	}
	if got := string(AppendNonceCookie(nil, 0xff000001)); got != "obMatJos2AAAB" {
		t.Fatalf("bits above 24 not dropped: %q", got)
	}
	for _, nonce := range []string{
		"", "obMatJos2", "obMatJos2AAA", "obMatJos2AA==", "obMatJos2A===", "obMatJos2!!!!",
		"obMatJos2AA\nA", "ObMatJos2AAAB", "xobMatJos2AAAB", "f//499k954d6OL34oL9FSTvy64sA",
	} {
		if f, ok := NonceFeatures(nonce); ok {
			t.Errorf("NonceFeatures(%q) = %06x, true", nonce, f)
		}
	}
	// The cookie as a server sends it, inside NONCE.
	n := AppendNonceCookie(nil, FeaturePasswordAlgorithms)
	n = append(n, "0123456789abcdef"...)
	b := AppendAttr(AppendHeader(nil, BindingError, testID), AttrNonce, n)
	got, err := mustParse(t, b).Nonce()
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := NonceFeatures(got); !ok || f&FeaturePasswordAlgorithms == 0 || f&FeatureUsernameAnonymity != 0 {
		t.Fatalf("NonceFeatures = %06x, %v", f, ok)
	}
}
