// Package peerbench measures file transfers between two peers side by side
// in one run, on loopback and through the NAT lab (internal/natlab): icebreaker's
// `send`/`receive` (ICE, RFC 8445, https://www.rfc-editor.org/rfc/rfc8445, and
// QUIC, RFC 9000, https://www.rfc-editor.org/rfc/rfc9000) on a direct path and
// relayed through our TURN server (RFC 8656), magic-wormhole's Python client
// through the reference transit relay and direct, and quic-go on a plain
// UDP socket with the peers' QUIC configuration (quicceiling), the ceiling of
// the direct path. For each it reports the time from both sides having the
// code to the first byte on the receiver's disk, and the throughput.
//
// The measurement is the test TestPeerThroughput in this directory; it runs
// only when ICEBREAKER_BENCH_PEER=1 (the lab part needs root). Run it
// through bench/peer/run.sh, which builds the binaries and saves the
// report. This file and report.go hold the statistics and the report, plain
// Go tested on every `go test ./...`.
package peerbench
