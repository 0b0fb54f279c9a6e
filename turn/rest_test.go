package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"testing"
	"time"
)

// TestRESTCredentialsVector checks a vector computed outside Go with
//
//	printf '1700000000:alice' | openssl dgst -sha1 -hmac north -binary | base64
//
// which is what coturn's --use-auth-secret verifies.
func TestRESTCredentialsVector(t *testing.T) {
	cases := []struct {
		user             string
		username, passwd string
	}{
		{"alice", "1700000000:alice", "Cd/49soE35ICqcJF/bCTn8Z4OyE="},
		{"", "1700000000", "CWyHi3zCeWqXBir9thl4m+iZPRY="},
	}
	for _, tc := range cases {
		u, p := RESTCredentials("north", tc.user, time.Unix(1700000000, 0))
		if u != tc.username || p != tc.passwd {
			t.Errorf("RESTCredentials(north, %q) = %q %q, want %q %q", tc.user, u, p, tc.username, tc.passwd)
		}
	}
}

// TestRESTCredentialsHMAC compares with an HMAC-SHA1 computed here.
func TestRESTCredentialsHMAC(t *testing.T) {
	cases := []struct {
		secret, user string
		expiry       time.Time
	}{
		{"s3cret", "bob", time.Date(2030, 1, 2, 3, 4, 5, 999, time.UTC)},
		{"", "with:colon", time.Unix(0, 0)},
		{"ünïcode secret", "ünïcode", time.Unix(4102444800, 0)},
		{"k", "", time.Unix(1, 0)},
	}
	for _, tc := range cases {
		u, p := RESTCredentials(tc.secret, tc.user, tc.expiry)
		mac := hmac.New(sha1.New, []byte(tc.secret))
		mac.Write([]byte(u))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); p != want {
			t.Errorf("password for %q = %q, want %q", u, p, want)
		}
		if p != RESTPassword(tc.secret, u) {
			t.Errorf("RESTPassword disagrees for %q", u)
		}
		exp, user, ok := ParseRESTUsername(u)
		if !ok || !exp.Equal(time.Unix(tc.expiry.Unix(), 0)) || user != tc.user {
			t.Errorf("ParseRESTUsername(%q) = %v %q %v", u, exp, user, ok)
		}
	}
}

func TestParseRESTUsername(t *testing.T) {
	cases := []struct {
		in     string
		expiry int64
		user   string
		ok     bool
	}{
		{"1700000000:alice", 1700000000, "alice", true},
		{"1700000000", 1700000000, "", true},
		{"1700000000:", 1700000000, "", true},
		{"1700000000:a:b", 1700000000, "a:b", true},
		{"0:x", 0, "x", true},
		// coturn also takes the timestamp after the first separator when
		// what precedes it is not all digits.
		{"alice:1700000000", 1700000000, "alice", true},
		{":1700000000", 1700000000, "", true},
		{"9223372036854775807:max", 9223372036854775807, "max", true},
		{"", 0, "", false},
		{":", 0, "", false},
		{"alice", 0, "", false},
		{"alice:bob", 0, "", false},
		{"alice:17x", 0, "", false},
		{"-5:alice", 0, "", false},
		{"+5:alice", 0, "", false},
		{"17 :alice", 0, "", false},
		{"9223372036854775808:overflow", 0, "", false},
		{"alice:bob:1700000000", 0, "", false},
	}
	for _, tc := range cases {
		exp, user, ok := ParseRESTUsername(tc.in)
		if ok != tc.ok || (ok && (exp.Unix() != tc.expiry || user != tc.user)) {
			t.Errorf("ParseRESTUsername(%q) = %d %q %v, want %d %q %v", tc.in, exp.Unix(), user, ok, tc.expiry, tc.user, tc.ok)
		}
	}
}
