#!/usr/bin/env bash
# File transfer between two peers, side by side in one run, on loopback and
# through the NAT lab: icebreaker send/receive direct and relayed through our
# TURN, Python magic-wormhole through the reference transit relay and direct,
# and quic-go on a plain UDP socket with the peers' QUIC settings (the ceiling
# of the direct path). See README.md.
#
# Needs root for the lab (network namespaces, nftables, conntrack);
# ENVS=loopback runs without.
#
# Environment overrides:
#   MB=256                    file size in MiB (MB=32 for a quick run)
#   RUNS=2                    runs per configuration and environment, interleaved
#   ENVS="loopback lab"       where to run
#   CONFIGS="icebreaker-direct icebreaker-relay wormhole-relay wormhole-direct quic-ceiling"
#   RUN_TIMEOUT=120s          bound of one transfer, set-up included
#   ICEBREAKER=path           use this icebreaker binary instead of building one
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

MB=${MB:-256}
RUNS=${RUNS:-2}
ENVS=${ENVS:-"loopback lab"}
CONFIGS=${CONFIGS:-"icebreaker-direct icebreaker-relay wormhole-relay wormhole-direct quic-ceiling"}
RUN_TIMEOUT=${RUN_TIMEOUT:-120s}
GO=${GO:-go}

log() { echo "peerbench: $*" >&2; }
TMP_NAME=icebreaker-peerbench
# shellcheck source=../labharness.sh
source "$repo/bench/labharness.sh"

# --- preconditions -----------------------------------------------------------
if [[ " $ENVS " == *" lab "* ]]; then
	if [[ $(id -u) != 0 ]]; then
		log "the lab needs root (network namespaces, nftables); run as root or with ENVS=loopback"
		exit 1
	fi
	need_lab_tools
fi
if [[ " $CONFIGS " == *" wormhole-"* ]]; then
	if [[ ! -x /usr/bin/wormhole ]] || ! /usr/bin/python3 -c 'import wormhole_mailbox_server, wormhole_transit_relay' 2>/dev/null; then
		log "the wormhole configurations need magic-wormhole, python3-magic-wormhole-mailbox-server and"
		log "magic-wormhole-transit-relay (scripts/install-test-deps.sh)"
		exit 1
	fi
fi
check_run_timeout "$RUN_TIMEOUT"

# --- build -------------------------------------------------------------------
build_icebreaker
"$GO" build -o "$tmp/quicceiling" ./bench/peer/quicceiling
# The harness is a Go test (the NAT lab needs a testing.TB).
"$GO" test -c -o "$tmp/peerbench.test" ./bench/peer

# --- run ---------------------------------------------------------------------
n() { wc -w <<<"$1"; }
timeout_s=$(($(n "$ENVS") * $(n "$CONFIGS") * RUNS * (${RUN_TIMEOUT%s} + 5) + 300))
uptime_start=$(uptime)
start=$(date +%s)
log "$MB MiB, $RUNS runs of: $CONFIGS; in: $ENVS"
rc=0
ICEBREAKER_BENCH_PEER=1 PEERBENCH_MB="$MB" PEERBENCH_RUNS="$RUNS" PEERBENCH_ENVS="$ENVS" \
	PEERBENCH_CONFIGS="$CONFIGS" PEERBENCH_RUN_TIMEOUT="$RUN_TIMEOUT" \
	PEERBENCH_ICEBREAKER="$tmp/icebreaker" PEERBENCH_CEILING="$tmp/quicceiling" \
	PEERBENCH_REPORT="$tmp/report.txt" \
	run_harness "$tmp/test.log" "env=" bench/peer \
	"$tmp/peerbench.test" -test.run '^TestPeerThroughput$' -test.v -test.count 1 -test.timeout "${timeout_s}s" || rc=$?
elapsed=$(($(date +%s) - start))
uptime_end=$(uptime)
if ((rc != 0)) || [[ ! -s "$tmp/report.txt" ]]; then
	log "the harness failed (exit $rc):"
	tail -n 40 "$tmp/test.log" >&2
	exit 1
fi

# --- report ------------------------------------------------------------------
report() {
	echo "File transfer: icebreaker direct and relayed, magic-wormhole relayed and direct, the quic-go ceiling"
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
	echo "host:     $(uname -sr), $(nproc) CPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "go:       $("$GO" env GOVERSION); quic-go $(sed -n 's|^[[:space:]]*github.com/quic-go/quic-go \(v[^ ]*\).*|\1|p' go.mod)"
	echo "wormhole: magic-wormhole $(dpkg-query -W -f='${Version}' magic-wormhole 2>/dev/null || echo unknown)," \
		"transit relay $(dpkg-query -W -f='${Version}' magic-wormhole-transit-relay 2>/dev/null || echo unknown)"
	echo "uptime:   at the start:$uptime_start"
	echo "          at the end:  $uptime_end"
	echo "targets:  relayed >= 3x wormhole relayed (same run); direct >= 0.8x the quic-go ceiling;"
	echo "          time to first byte in the lab <= 1 s direct, <= 1.5 s relayed"
	echo
	cat "$tmp/report.txt"
	echo
	echo "elapsed:  ${elapsed}s"
	if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v c="$(nproc)" 'BEGIN{exit !(l > c / 2)}'; then
		echo "WARNING: the host is busy (load above half its CPUs): figures are noisy; compare the ratios of one run."
	fi
}

mkdir -p bench/results
out="bench/results/peer-$(date +%Y%m%d-%H%M%S).txt"
report | tee "$out"
log "written to $out"
