// Package stunclient runs STUN client transactions as RFC 8489
// (https://www.rfc-editor.org/rfc/rfc8489) specifies them: retransmission
// over UDP (Section 6.2.1), a single send with a 39.5 s timeout over TCP
// and TLS (Section 6.2.2), matching responses by transaction ID (Section
// 6.3), and the long-term credential exchange of Section 9.2 (401, then a
// retry with REALM, NONCE and integrity; 438, then a fresh nonce). A 300
// response with ALTERNATE-SERVER is followed once (Section 10).
package stunclient
