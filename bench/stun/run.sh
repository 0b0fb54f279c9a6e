#!/usr/bin/env bash
# STUN Binding throughput on loopback: icebreaker against coturn and against
# a bare Go responder (the per-packet-syscall ceiling). See README.md.
#
# Environment overrides:
#   DURATION=10s  WARMUP=1s  ROUNDS=2
#   SERVERS="coturn icebreaker bare"      which servers to run
#   LOADGEN_FLAGS="-sockets 4 -inflight 32"
#   COTURN_PINNED_THREADS=1               coturn's -m for the pinned run
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-2}
SERVERS=${SERVERS:-"coturn icebreaker bare"}
LOADGEN_FLAGS=${LOADGEN_FLAGS:-"-sockets 4 -inflight 32"}
COTURN_PINNED_THREADS=${COTURN_PINNED_THREADS:-1}
GO=${GO:-go}

LOG_PREFIX=bench TMP_NAME=icebreaker-bench
# shellcheck source=../lib.sh
source "$repo/bench/lib.sh"

# --- build ------------------------------------------------------------------

log "building into $tmp"
"$GO" build -o "$tmp/" ./bench/stun/loadgen ./bench/stun/bareresponder
if want icebreaker; then
	if ! "$GO" build -o "$tmp/icebreaker" ./cmd/icebreaker; then
		log "icebreaker does not build; run with SERVERS=\"coturn bare\" to measure the others"
		exit 1
	fi
fi
if want coturn && ! command -v turnserver >/dev/null; then
	if [[ "${CI:-}" == "true" ]]; then
		log "turnserver (coturn) not found"
		exit 1
	fi
	log "turnserver (coturn) not found, skipping it (apt-get install coturn)"
	SERVERS=${SERVERS//coturn/}
fi

ncpu=$(nproc)
modes="pinned unpinned"
if ((ncpu < 2)); then
	log "only $ncpu CPU: skipping the pinned round (it needs cores 0 and 1)"
	modes="unpinned"
fi

# --- helpers ----------------------------------------------------------------


# start_server NAME MODE PORT: starts the server in the background and sets
# srv_pid. Pinned servers run on core 0.
start_server() {
	local name=$1 mode=$2 port=$3 pin=()
	[[ $mode == pinned ]] && pin=(taskset -c 0)
	local out="$tmp/$name-$mode.log"
	case $name in
	bare)
		"${pin[@]}" "$tmp/bareresponder" -listen 127.0.0.1 -port "$port" >"$out" 2>&1 &
		;;
	icebreaker)
		local socks=()
		[[ $mode == pinned ]] && socks=(--udp-sockets 1)
		"${pin[@]}" "$tmp/icebreaker" serve --rendezvous off --listen 127.0.0.1 --port "$port" "${socks[@]}" >"$out" 2>&1 &
		;;
	coturn)
		local threads=()
		[[ $mode == pinned ]] && threads=(-m "$COTURN_PINNED_THREADS")
		"${pin[@]}" turnserver -n --no-cli --no-tls --no-dtls --stun-only \
			--listening-ip 127.0.0.1 -p "$port" --no-software-attribute \
			--log-file stdout --simple-log "${threads[@]}" >"$out" 2>&1 &
		;;
	esac
	srv_pid=$!
}

# cpu_ticks PID: user+system clock ticks the process has used so far.
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0
}
clk_tck=$(getconf CLK_TCK)

# host_ticks: clock ticks all CPUs spent busy (user, nice, system, irq,
# softirq) or stolen by the hypervisor.
host_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# measure NAME MODE: one run; sets line to loadgen's result line. It runs in
# the main shell (not in $(...)) so that the EXIT trap sees srv_pid.
line=""
measure() {
	local name=$1 mode=$2 port pin=()
	port=$(free_port)
	start_server "$name" "$mode" "$port"
	[[ $mode == pinned ]] && pin=(taskset -c 1)
	local c0 c1 h0 h1 t0 t1
	c0=$(cpu_ticks "$srv_pid")
	h0=$(host_ticks)
	t0=$(date +%s.%N)
	# The load generator runs in the background and the shell waits for it
	# with the wait builtin, which a trapped signal interrupts.
	# shellcheck disable=SC2086 # LOADGEN_FLAGS is a word list on purpose.
	"${pin[@]}" "$tmp/loadgen" -target "127.0.0.1:$port" -duration "$DURATION" \
		-warmup "$WARMUP" -label "$name/$mode" $LOADGEN_FLAGS >"$tmp/loadgen.out" 2>&1 &
	gen_pid=$!
	local rc=0
	wait "$gen_pid" || rc=$?
	gen_pid=""
	line=$(tail -n 1 "$tmp/loadgen.out")
	if ((rc != 0)); then
		log "$name ($mode) failed: $(cat "$tmp/loadgen.out")"
		log "server output:"
		tail -n 20 "$tmp/$name-$mode.log" >&2 || true
		line="label=$name/$mode rate=0 req/s FAILED"
	fi
	c1=$(cpu_ticks "$srv_pid")
	h1=$(host_ticks)
	t1=$(date +%s.%N)
	# Cores the server kept busy during the loadgen run (warmup included),
	# and cores that neither the server nor the load generator used: other
	# processes, hypervisor steal, and interrupt work charged to no task.
	local lcpu
	lcpu=$(sed -n 's/.* cpu=\([0-9.]*\)s.*/\1/p' <<<"$line")
	line+=$(awk -v c="$((c1 - c0))" -v h="$((h1 - h0))" -v l="${lcpu:-0}" -v hz="$clk_tck" -v a="$t0" -v b="$t1" \
		'BEGIN{ o = (h - c) / hz - l; if (o < 0) o = 0
			printf " server_cores=%.2f other_cores=%.2f", c / hz / (b - a), o / (b - a) }')
	# Server CPU per answered request: less sensitive to noise than the
	# rate (the warmup is in both the CPU time and the elapsed time).
	local r
	r=$(rate_of "$line")
	line+=$(awk -v c="$((c1 - c0))" -v hz="$clk_tck" -v a="$t0" -v b="$t1" -v r="${r:-0}" \
		'BEGIN{ if (r > 0) printf " server_us_per_req=%.2f", c / hz / (b - a) / r * 1e6 }')
	stop_server
}

# rate_of LINE: the req/s figure of a loadgen line.
rate_of() { sed -n 's/.* rate=\([0-9.]*\) req\/s.*/\1/p' <<<"$1"; }

# --- run --------------------------------------------------------------------
declare -A best
raw=()
start=$(date +%s)
for mode in $modes; do
	for ((round = 1; round <= ROUNDS; round++)); do
		for name in $SERVERS; do
			log "$mode round $round: $name"
			measure "$name" "$mode"
			raw+=("round=$round load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /) $line")
			r=$(rate_of "$line")
			r=${r:-0}
			key="$name/$mode"
			if [[ -z "${best[$key]:-}" ]] || awk -v a="$r" -v b="${best[$key]}" 'BEGIN{exit !(a>b)}'; then
				best[$key]=$r
			fi
		done
	done
done
elapsed=$(($(date +%s) - start))

# --- report -----------------------------------------------------------------

report() {
	echo "STUN Binding throughput on loopback, requests answered per second"
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
	echo "host:     $(uname -sr), $ncpu CPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "go:       $("$GO" env GOVERSION)"
	echo "coturn:   $(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo unknown)"
	echo "load:     loadgen $LOADGEN_FLAGS, ${WARMUP} warmup + ${DURATION} measured, best of $ROUNDS interleaved rounds"
	echo "pinned:   server on core 0, loadgen on core 1; icebreaker --udp-sockets 1, coturn -m $COTURN_PINNED_THREADS"
	echo "unpinned: defaults everywhere (icebreaker's default sockets, coturn's default threads)"
	echo
	printf "%-10s %12s %12s %12s %11s %9s\n" mode coturn icebreaker bare ib/coturn ib/bare
	local mode
	for mode in $modes; do
		local c=${best[coturn/$mode]:-} i=${best[icebreaker/$mode]:-} b=${best[bare/$mode]:-}
		printf "%-10s %12s %12s %12s %11s %9s\n" "$mode" "$(num "$c")" "$(num "$i")" "$(num "$b")" \
			"$(ratio "$i" "$c")" "$(ratio "$i" "$b")"
	done
	raw_runs "$elapsed" "${raw[@]}"
}

mkdir -p bench/results
out="bench/results/stun-$(date +%Y%m%d-%H%M%S).txt"
report | tee "$out"
log "written to $out"
