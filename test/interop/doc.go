// Package interop tests `icebreaker serve` with pion (https://github.com/pion)
// as the client: pion/turn v5 allocates, creates permissions, binds channels
// and relays through it (TURN, RFC 8656,
// https://www.rfc-editor.org/rfc/rfc8656), and pion/stun v4 sends it Binding
// requests (STUN, RFC 8489, https://www.rfc-editor.org/rfc/rfc8489). The
// other way round, a pion/turn server runs in-process and our
// turn/turnclient allocates and relays through it. For ICE (RFC 8445),
// cmd/pionice is a small command on pion/ice v4 that speaks the token and
// ping exchange of `icebreaker ice offer|answer`, so that our agent and
// pion's connect to each other on loopback and through the NAT lab's
// kernel NATs, each in either role; bench/ice uses it to time pion/ice
// beside our agent.
//
// It is a module of its own so that the main module does not depend on
// pion. The tests build the icebreaker binary from the enclosing module
// (../..), start it on free loopback ports, and kill it by process group in
// their cleanup, with the helpers of internal/testutil. Run them with
//
//	cd test/interop && go test -race -count=1 ./...
//
// Apart from cmd/pionice, its code is in the _test.go files.
package interop
