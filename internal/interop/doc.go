// Package interop holds end-to-end tests of icebreaker against peers that
// no one here wrote: coturn's turnutils_stunclient and Vovida's classic
// RFC 3489 stun client against `icebreaker serve`, `icebreaker stun`
// against coturn's turnserver, and hostile input against the running
// server. It has no code of its own; see the _test.go files.
//
// Each test builds the icebreaker binary once per run, starts its peers
// itself on free loopback ports (or in a network namespace it creates),
// and kills them by process group in its cleanup. A missing peer binary or
// missing root skips a test, or fails it when CI=true (see
// internal/testutil).
//
// Protocols: STUN, RFC 8489 (https://www.rfc-editor.org/rfc/rfc8489), and
// its predecessor RFC 3489 (https://www.rfc-editor.org/rfc/rfc3489) for the
// classic client.
package interop
