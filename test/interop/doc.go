// Package interop tests `icebreaker serve` with pion (https://github.com/pion)
// as the client: pion/turn v5 allocates, creates permissions, binds channels
// and relays through it (TURN, RFC 8656,
// https://www.rfc-editor.org/rfc/rfc8656), and pion/stun v4 sends it Binding
// requests (STUN, RFC 8489, https://www.rfc-editor.org/rfc/rfc8489). The
// other way round, a pion/turn server runs in-process and our
// turn/turnclient allocates and relays through it.
//
// It is a module of its own so that the main module does not depend on
// pion. The tests build the icebreaker binary from the enclosing module
// (../..), start it on free loopback ports, and kill it by process group in
// their cleanup, with the helpers of internal/testutil. Run them with
//
//	cd test/interop && go test -race -count=1 ./...
//
// It has no code of its own; see the _test.go files.
package interop
