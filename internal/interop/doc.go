// Package interop holds end-to-end tests of icebreaker against peers that
// no one here wrote: coturn's turnutils_stunclient and Vovida's classic
// RFC 3489 stun client against `icebreaker serve`, `icebreaker stun`
// against coturn's turnserver, hostile input against the running server,
// coturn's turnutils_uclient (UDP, TCP, Send indications, client-to-client,
// REST secrets, RFC 6062 TCP relay, IPv6) against the TURN server, the
// default relay policy seen from outside, and a relay through two real
// symmetric NATs in the NAT lab. It has no code of its own; see the
// _test.go files (testdata/turnrelay is a small client for the NAT lab).
//
// Each test builds the icebreaker binary once per run, starts its peers
// itself on free loopback ports (or in a network namespace it creates),
// and kills them by process group in its cleanup. A missing peer binary or
// missing root skips a test, or fails it when CI=true (see
// internal/testutil).
//
// Protocols: STUN, RFC 8489 (https://www.rfc-editor.org/rfc/rfc8489), and
// its predecessor RFC 3489 (https://www.rfc-editor.org/rfc/rfc3489) for the
// classic client; TURN, RFC 8656 (https://www.rfc-editor.org/rfc/rfc8656)
// with RFC 6062 and RFC 6156.
package interop
