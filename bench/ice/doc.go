// Package icebench measures ICE (RFC 8445, https://www.rfc-editor.org/rfc/rfc8445)
// time to connected for two command-line agents side by side: icebreaker's
// own (`icebreaker ice offer|answer`) and pion/ice v4 (`pionice`, built from
// test/interop/cmd/pionice with the same command-line shape). Both run
// behind real kernel NATs of the NAT lab (internal/natlab), in the same run,
// against the same STUN/TURN server.
//
// The measurement itself is the test TestICEConnectTime in this directory;
// it runs only when ICEBREAKER_BENCH_ICE=1 and needs root. Run it through
// bench/ice/run.sh, which builds both agents and saves the report. This file
// and report.go hold the statistics and the report, which are plain Go so
// that they are tested on every `go test ./...`.
package icebench
