#!/usr/bin/env bash
# ICE time to connected through real NATs: icebreaker's agent
# (`icebreaker ice offer|answer`) against pion/ice v4 (`pionice`), measured in
# the same run, on the same NAT-lab pairs, with the same STUN/TURN server.
# See README.md.
#
#   direct  eim x eim NATs: a server-reflexive or peer-reflexive pair
#   relay   random x random (symmetric) NATs: only a relayed pair works
#   portmap random x random with miniupnpd on lanA's NAT: a direct pair through
#           the port mapping (CASES="portmap" AGENTS=icebreaker; pion asks no router)
#
# Needs root (network namespaces, nftables, conntrack).
#
# Environment overrides:
#   RUNS=20                       measured runs per agent and case
#   WARMUP=1                      uncounted runs per agent at the start of each case
#   CASES="direct relay"          which cases to run ("portmap" too, see above)
#   SERVER=icebreaker             STUN/TURN server: icebreaker, coturn, or "icebreaker coturn" (or both)
#   AGENTS="icebreaker pion"      which agents to run
#   RUN_TIMEOUT=30s               bound of one attempt (gathering, checks, one ping)
#   ICEBREAKER=path               use this icebreaker binary instead of building one
#   PIONICE=path                  use this pionice binary instead of building one
#   VERBOSE=0                     1: pass -v to the agents and log their whole output for every run
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-1}
CASES=${CASES:-"direct relay"}
SERVER=${SERVER:-icebreaker}
AGENTS=${AGENTS:-"icebreaker pion"}
RUN_TIMEOUT=${RUN_TIMEOUT:-30s}
VERBOSE=${VERBOSE:-0}
GO=${GO:-go}

[[ $SERVER == both ]] && SERVER="icebreaker coturn"

log() { echo "icebench: $*" >&2; }
want() { [[ " $1 " == *" $2 "* ]]; }
TMP_NAME=icebreaker-icebench
# shellcheck source=../labharness.sh
source "$repo/bench/labharness.sh"

# --- preconditions -----------------------------------------------------------
if [[ $(id -u) != 0 ]]; then
	log "needs root: the NAT lab makes network namespaces and nftables NATs."
	log "run it as root, for example: sudo env PATH=\"\$PATH\" bash bench/ice/run.sh"
	exit 1
fi
if [[ " $CASES " == *" portmap "* ]] && ! command -v miniupnpd >/dev/null && [[ ! -x /usr/sbin/miniupnpd ]]; then
	log "the portmap case needs miniupnpd (apt-get install -y miniupnpd-nftables)"
	exit 1
fi
need_lab_tools
if want "$SERVER" coturn && ! command -v turnserver >/dev/null; then
	if [[ "${CI:-}" == "true" ]]; then
		log "turnserver (coturn) not found"
		exit 1
	fi
	log "turnserver (coturn) not found, skipping it (apt-get install coturn)"
	SERVER=${SERVER//coturn/}
	if [[ -z "${SERVER// /}" ]]; then
		exit 1
	fi
fi

check_run_timeout "$RUN_TIMEOUT"

# --- build -------------------------------------------------------------------
build_icebreaker
pionice=""
pion_version=$(sed -n 's|^[[:space:]]*github.com/pion/ice/v4 \(v[^ ]*\).*|\1|p' test/interop/go.mod | head -n1)
if want "$AGENTS" pion; then
	if [[ -n "${PIONICE:-}" ]]; then
		cp "$PIONICE" "$tmp/pionice"
		pionice="$tmp/pionice"
	elif [[ ! -d test/interop/cmd/pionice ]]; then
		log "test/interop/cmd/pionice does not exist: pion is skipped"
	elif (cd test/interop && "$GO" build -o "$tmp/pionice" ./cmd/pionice); then
		pionice="$tmp/pionice"
	else
		log "pionice does not build: pion is skipped"
	fi
fi
# The harness is a Go test (the NAT lab needs a testing.TB); compile it once.
"$GO" test -c -o "$tmp/icebench.test" ./bench/ice

# --- run ---------------------------------------------------------------------
n() { wc -w <<<"$1"; }
# Each attempt is bounded by RUN_TIMEOUT; leave room for the labs and servers.
timeout_s=$((($(n "$CASES") * $(n "$SERVER") * $(n "$AGENTS") * (RUNS + WARMUP) * (${RUN_TIMEOUT%s} + 1)) + 300))
load_start=$(cat /proc/loadavg)
start=$(date +%s)
log "server: $SERVER; cases: $CASES; agents: $AGENTS; $RUNS runs each (+$WARMUP warm-up)"
rc=0
ICEBREAKER_BENCH_ICE=1 \
	ICEBENCH_RUNS="$RUNS" ICEBENCH_WARMUP="$WARMUP" ICEBENCH_CASES="$CASES" \
	ICEBENCH_SERVERS="$SERVER" ICEBENCH_AGENTS="$AGENTS" ICEBENCH_RUN_TIMEOUT="$RUN_TIMEOUT" \
	ICEBENCH_ICEBREAKER="$tmp/icebreaker" ICEBENCH_PIONICE="$pionice" \
	ICEBENCH_REPORT="$tmp/report.txt" ICEBENCH_VERBOSE="$VERBOSE" \
	run_harness "$tmp/test.log" "server=" bench/ice \
	"$tmp/icebench.test" -test.run '^TestICEConnectTime$' -test.v -test.count 1 -test.timeout "${timeout_s}s" || rc=$?
elapsed=$(($(date +%s) - start))
load_end=$(cat /proc/loadavg)
if ((rc != 0)) || [[ ! -s "$tmp/report.txt" ]]; then
	log "the harness failed (exit $rc):"
	tail -n 40 "$tmp/test.log" >&2
	exit 1
fi

# --- report ------------------------------------------------------------------
report() {
	echo "ICE time to connected through the NAT lab: icebreaker against pion/ice"
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
	echo "host:     $(uname -sr), $(nproc) CPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "go:       $("$GO" env GOVERSION)"
	echo "pion/ice: ${pion_version:-unknown} (pionice from test/interop)"
	echo "coturn:   $(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo unknown)"
	echo "load:     /proc/loadavg $load_start at the start, $load_end at the end"
	echo "agents:   offer in lanA, answer in lanB, fresh processes per run, conntrack flushed before each;"
	echo "          both: --stun S --turn turn:S --turn-user U --turn-pass P --count 1 --json"
	echo "targets:  icebreaker median <= 200 ms direct, <= 1.0 s relay, <= 300 ms portmap; pion/icebreaker >= 2x in direct and relay"
	echo
	cat "$tmp/report.txt"
	echo
	echo "elapsed:  ${elapsed}s"
	if awk -v l="${load_start%% *}" 'BEGIN{exit !(l > 1.0)}'; then
		echo "WARNING: the host was busy at the start (load ${load_start%% *}); times are noisy."
	fi
}

mkdir -p bench/results
out="bench/results/ice-$(date +%Y%m%d-%H%M%S).txt"
report | tee "$out"
log "written to $out"
