// Package turnload is what the TURN benchmark tools under bench/turn share:
// a guard that refuses every target outside loopback, TURN requests (RFC
// 8656, https://www.rfc-editor.org/rfc/rfc8656) with the long-term
// credentials of RFC 8489, Section 9.2 (https://www.rfc-editor.org/rfc/rfc8489),
// a blocking transaction for setting up a few allocations, and, on Linux, an
// epoll engine that runs thousands of client sockets, each with its own
// 5-tuple and so its own allocation, from one goroutine.
//
// The TURN attributes of every request are package turn's request bodies,
// the ones turnclient, and so `icebreaker turn load`, sends: this package
// only adds the header and the credentials.
//
// The requests are those of an RFC 5389-era client such as coturn's
// turnutils_uclient: the first Allocate carries no credentials, the retry
// after 401 carries USERNAME, REALM, NONCE and a MESSAGE-INTEGRITY with the
// MD5 key, and every request ends with FINGERPRINT. Every server under test
// gets the same bytes.
//
// Nothing here is safe for concurrent use unless it says so; a tool owns
// each value from one goroutine.
package turnload
