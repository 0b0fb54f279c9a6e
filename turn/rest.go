package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// RESTSeparator separates the expiry time from the user name in a TURN
// REST API username; it is coturn's default --rest-api-separator.
const RESTSeparator = ':'

// RESTCredentials returns ephemeral TURN credentials valid until expiry:
// the username "EXPIRY:user" (just "EXPIRY" when user is empty), EXPIRY in
// seconds since the Unix epoch, and the password
// base64(HMAC-SHA1(secret, username)). draft-uberti-behave-turn-rest-00,
// Section 2.2; the format coturn's --use-auth-secret verifies. The server
// checks the password by recomputing it (RESTPassword) with each of its
// secrets, and the expiry with ParseRESTUsername. expiry should be after
// 1970; one before gives a username ParseRESTUsername rejects.
func RESTCredentials(secret, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10)
	if user != "" {
		username += string(RESTSeparator) + user
	}
	return username, RESTPassword(secret, username)
}

// RESTPassword returns the password of a TURN REST API username under
// secret: base64(HMAC-SHA1(secret, username)), standard base64 with padding.
// draft-uberti-behave-turn-rest-00, Section 2.2.
func RESTPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseRESTUsername splits a TURN REST API username into its expiry and user
// name. It accepts the forms coturn accepts with the ':' separator:
// "EXPIRY:user" (the draft's), "EXPIRY" alone, and "user:EXPIRY" (when the
// part before the first ':' is not all digits). EXPIRY is decimal seconds
// since the Unix epoch. ok is false when no expiry can be found; the caller
// compares expiry with the current time.
func ParseRESTUsername(username string) (expiry time.Time, user string, ok bool) {
	first, rest, found := strings.Cut(username, string(RESTSeparator))
	if !found {
		return parseExpiry(username, "")
	}
	if isDigits(first) {
		return parseExpiry(first, rest)
	}
	return parseExpiry(rest, first)
}

// parseExpiry parses s, which must be all decimal digits, as Unix seconds.
func parseExpiry(s, user string) (time.Time, string, bool) {
	if !isDigits(s) {
		return time.Time{}, "", false
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0), user, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
