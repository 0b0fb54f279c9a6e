#!/usr/bin/env bash
# TURN server benchmark on loopback: icebreaker against coturn, measured in
# the same run. See README.md.
#
#   1. ChannelData relay: received packets/s and loss at fixed offered rates.
#   2. Memory per allocation: server RSS growth over 10,000 idle allocations.
#   3. Allocations per second: Allocate, 401, authenticated Allocate.
#   4. Many allocations: MANY_ALLOCS allocations at modest rates each,
#      ChannelData both ways, with the server's CPU time per relayed packet.
#
# Environment overrides:
#   PARTS="relay mem rate many"   which measurements to run
#   SERVERS="coturn icebreaker"   which servers to run
#   ROUNDS=2                      interleaved rounds of relay and rate; the best counts
#   RATES="80000 150000 200000"   offered ChannelData rates, packets/s
#   RELAY_DURATION=5s             measured time per rate (plus RELAY_WARMUP=500ms)
#   RELAY_MODE=peer               peer: one allocation and a plain UDP peer; pair: two allocations
#   RELAY_GSO=1                   1: the generator sends each batch as one UDP GSO datagram;
#                                 0: sendmmsg (cannot offer 200k packets/s on a 2-vCPU VM)
#   RELAY_SIZE=100                application data bytes per ChannelData
#   MEM_ALLOCS=10000              idle allocations for the memory measurement
#   RATE_DURATION=5s              measured allocating time
#   INFLIGHT=32                   Allocate operations in flight
#   MANY_ALLOCS=200               allocations of part 4, each with its own peer
#   MANY_RATES="250 500 1000"     packets/s per allocation, both directions together
#   MANY_DURATION=5s              measured time per rate of part 4
#   PROFILE_RATE=500              the rate of part 4's profiled run (with perf: system
#                                 calls and the kernel's share of the server's CPU)
#   ICEBREAKER=path               use this icebreaker binary instead of building one
#   WAIT_QUIET=0                  wait up to this many seconds for the host to go idle first
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

PARTS=${PARTS:-"relay mem rate many"}
SERVERS=${SERVERS:-"coturn icebreaker"}
ROUNDS=${ROUNDS:-2}
RATES=${RATES:-"80000 150000 200000"}
RELAY_DURATION=${RELAY_DURATION:-5s}
RELAY_WARMUP=${RELAY_WARMUP:-500ms}
RELAY_MODE=${RELAY_MODE:-peer}
RELAY_GSO=${RELAY_GSO:-1}
RELAY_SIZE=${RELAY_SIZE:-100}
MEM_ALLOCS=${MEM_ALLOCS:-10000}
RATE_DURATION=${RATE_DURATION:-5s}
INFLIGHT=${INFLIGHT:-32}
WAIT_QUIET=${WAIT_QUIET:-0}
MANY_ALLOCS=${MANY_ALLOCS:-200}
MANY_RATES=${MANY_RATES:-"250 500 1000"}
MANY_DURATION=${MANY_DURATION:-5s}
GO=${GO:-go}

user=bench
pass=bench-$RANDOM$RANDOM
realm=bench

LOG_PREFIX=turnbench TMP_NAME=icebreaker-turnbench
# shellcheck source=../lib.sh
source "$repo/bench/lib.sh"
part() { [[ " $PARTS " == *" $1 "* ]]; }

# --- preconditions -----------------------------------------------------------
ncpu=$(nproc)
if ((ncpu < 2)); then
	log "needs 2 CPUs (server on core 0, load generator on core 1); this machine has $ncpu"
	exit 1
fi
for tool in taskset ss; do
	command -v "$tool" >/dev/null || {
		log "$tool not found"
		exit 1
	}
done
if want coturn && ! command -v turnserver >/dev/null; then
	if [[ "${CI:-}" == "true" ]]; then
		log "turnserver (coturn) not found"
		exit 1
	fi
	log "turnserver (coturn) not found, skipping it (apt-get install coturn)"
	SERVERS=${SERVERS//coturn/}
fi
# 10,000 allocations need 10,000 client sockets here and 10,000 relay sockets
# in the server, which inherits this limit.
need_fds=$((MEM_ALLOCS + 1000))
if (($(ulimit -n) < need_fds)); then
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
if (($(ulimit -n) < need_fds)); then
	log "open file limit $(ulimit -n) is below $need_fds; raise it (ulimit -n) or lower MEM_ALLOCS"
	exit 1
fi

# Part 4 counts the server's system calls where perf can (tracepoints),
# and samples where its CPU time goes where perf can also resolve kernel
# symbols (root, or kernel.kptr_restrict=0).
count_syscalls=0
profile_cpu=0
if part many && command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
	count_syscalls=1
	if awk '$3 == "udp_sendmsg" && $1 !~ /^0+$/ {found = 1} END {exit !found}' /proc/kallsyms 2>/dev/null &&
		perf record -q -g -o /dev/null true >/dev/null 2>&1; then
		profile_cpu=1
	fi
fi
if [[ -z "${PROFILE_RATE:-}" ]]; then
	PROFILE_RATE=${MANY_RATES%% *}
	[[ " $MANY_RATES " == *" 500 "* ]] && PROFILE_RATE=500
fi

# --- build -------------------------------------------------------------------
log "building into $tmp"
"$GO" build -o "$tmp/" ./bench/turn/relayload ./bench/turn/allocload
if want icebreaker; then
	if [[ -n "${ICEBREAKER:-}" ]]; then
		cp "$ICEBREAKER" "$tmp/icebreaker"
	elif ! "$GO" build -o "$tmp/icebreaker" ./cmd/icebreaker; then
		log "icebreaker does not build; run with SERVERS=coturn to measure coturn alone"
		exit 1
	fi
fi

# --- helpers -----------------------------------------------------------------


# start_server NAME PORT: starts the server on core 0 and sets srv_pid, then
# waits (at most 5 s) until its UDP port is bound.
start_server() {
	local name=$1 port=$2 out="$tmp/$1.log"
	case $name in
	coturn)
		taskset -c 0 turnserver -n --no-cli --no-tls --no-dtls --no-software-attribute \
			--listening-ip 127.0.0.1 --relay-ip 127.0.0.1 -p "$port" -m 1 \
			--min-port 49152 --max-port 65535 \
			--lt-cred-mech --user="$user:$pass" --realm="$realm" \
			--allow-loopback-peers --user-quota=0 --total-quota=0 \
			--log-file stdout --simple-log >>"$out" 2>&1 &
		;;
	icebreaker)
		# Unlimited like coturn here: allocations per user, and the
		# per-IP rate of error answers (the 401 of every first Allocate
		# from the one loopback address would be throttled at 50/s).
		ICEBREAKER_TURN_QUOTAS_ALLOCATIONS_PER_USER=0 ICEBREAKER_TURN_QUOTAS_ERROR_RATE_PER_IP=0 \
			taskset -c 0 "$tmp/icebreaker" serve --rendezvous off --listen 127.0.0.1 --port "$port" --udp-sockets 1 \
			--relay-ip 127.0.0.1 --relay-ports 49152-65535 \
			--user "$user:$pass" --realm "$realm" --user-db none \
			--allow-peer 127.0.0.0/8 --log-level warn >>"$out" 2>&1 &
		;;
	esac
	srv_pid=$!
	local i
	for ((i = 0; i < 50; i++)); do
		if [[ -n "$(ss -Hunl "sport = :$port")" ]]; then
			sleep 0.3 # let it finish starting before anything is measured
			return 0
		fi
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	log "$name did not start:"
	tail -n 20 "$out" >&2 || true
	return 1
}

# generate NAME TOOL ARGS...: runs a load tool on core 1 against the running
# server (whose PID it passes as -server-pid) and leaves its output lines in
# $tmp/gen.out. The tools report their own cores, the server's and the
# rest of the host's for each measured interval. Returns the tool's status.
generate() {
	local name=$1 rc=0
	shift
	taskset -c 1 "$@" -server-pid "$srv_pid" >"$tmp/gen.out" 2>"$tmp/gen.err" &
	gen_pid=$!
	wait "$gen_pid" || rc=$?
	gen_pid=""
	if ((rc != 0)); then
		log "$name: $(basename "$1") failed: $(cat "$tmp/gen.err")"
		log "server output:"
		tail -n 20 "$tmp/$name.log" >&2 || true
	fi
	return "$rc"
}

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' /; }

declare -A best_rx best_loss best_rate mem_kb mem_idle mem_delta rate_gen many_rx many_loss many_us many_sc many_send many_recv
raw=()

# measure_relay NAME: one server start, every rate.
measure_relay() {
	local name=$1 port rates
	port=$(free_port)
	start_server "$name" "$port" || return 1
	rates=$(tr ' ' , <<<"$RATES")
	local gso=()
	[[ $RELAY_GSO == 1 ]] && gso=(-gso)
	if generate "$name" "$tmp/relayload" -server "127.0.0.1:$port" -user "$user:$pass" -mode "$RELAY_MODE" \
		-rates "$rates" -duration "$RELAY_DURATION" -warmup "$RELAY_WARMUP" -size "$RELAY_SIZE" "${gso[@]}" -label "$name"; then
		:
	fi
	local line rate rx loss
	while IFS= read -r line; do
		raw+=("part=relay load=$(loadavg) $line")
		rate=$(field offered "$line")
		rx=$(field rx_rate "$line")
		loss=$(field loss "$line")
		[[ -z "$rate" || -z "$rx" ]] && continue
		if [[ -z "${best_rx[$name/$rate]:-}" ]] || awk -v a="$rx" -v b="${best_rx[$name/$rate]}" 'BEGIN{exit !(a>b)}'; then
			best_rx[$name/$rate]=$rx
			best_loss[$name/$rate]=$loss
		fi
	done <"$tmp/gen.out"
	stop_server
}

# measure_many NAME ROUND: one server start, every rate of part 4, with
# nothing attached to the server. The best run is the one with the least
# server CPU per relayed packet. In round 1, where perf can, a second
# server start runs PROFILE_RATE alone with perf attached (profile_many);
# its CPU figure is not used, as perf's tracepoint and sampling cost the
# server CPU time of their own.
measure_many() {
	local name=$1 round=$2 port rates line rate rx loss us
	port=$(free_port)
	start_server "$name" "$port" || return 1
	rates=$(tr ' ' , <<<"$MANY_RATES")
	if generate "$name" "$tmp/relayload" -server "127.0.0.1:$port" -user "$user:$pass" -mode many \
		-allocs "$MANY_ALLOCS" -rates "$rates" -duration "$MANY_DURATION" -warmup "$RELAY_WARMUP" -size "$RELAY_SIZE" -label "$name"; then
		:
	fi
	while IFS= read -r line; do
		raw+=("part=many load=$(loadavg) $line")
		rate=$(field offered "$line")
		rx=$(field rx_rate "$line")
		loss=$(field loss "$line")
		us=$(field server_us_per_packet "$line")
		[[ -z "$rate" || -z "$us" ]] && continue
		if [[ -z "${many_us[$name/$rate]:-}" ]] || awk -v a="$us" -v b="${many_us[$name/$rate]}" 'BEGIN{exit !(a<b)}'; then
			many_us[$name/$rate]=$us
			many_rx[$name/$rate]=$rx
			many_loss[$name/$rate]=$loss
		fi
	done <"$tmp/gen.out"
	stop_server
	if ((round == 1 && count_syscalls)); then
		profile_many "$name"
	fi
}

# profile_many NAME: one server start, PROFILE_RATE alone, with perf stat
# counting the server's system calls and perf record sampling where its
# CPU time goes. The figures are shares and counts per relayed packet,
# which depend on batching, not on how busy the host is:
#   many_sc      system calls per relayed packet (setup included)
#   many_send    % of the server's CPU samples under the kernel's
#                udp_sendmsg: building and routing each datagram, and on
#                loopback delivering it into the receiver's socket and
#                waking the receiver
#   many_recv    % under udp_recvmsg: taking each datagram off a socket
profile_many() {
	local name=$1 port sc_pid rec_pid calls relayed report
	port=$(free_port)
	start_server "$name" "$port" || return 1
	perf stat -x, -e raw_syscalls:sys_enter -p "$srv_pid" -o "$tmp/syscalls.txt" &
	sc_pid=$!
	rec_pid=""
	if ((profile_cpu)); then
		perf record -q -g -p "$srv_pid" -o "$tmp/$name.perf" >/dev/null 2>&1 &
		rec_pid=$!
	fi
	if generate "$name" "$tmp/relayload" -server "127.0.0.1:$port" -user "$user:$pass" -mode many \
		-allocs "$MANY_ALLOCS" -rates "$PROFILE_RATE" -duration "$MANY_DURATION" -warmup "$RELAY_WARMUP" -size "$RELAY_SIZE" -label "$name-profiled"; then
		:
	fi
	kill -INT "$sc_pid" $rec_pid 2>/dev/null || true
	wait "$sc_pid" $rec_pid 2>/dev/null || true
	stop_server
	raw+=("part=many-profiled load=$(loadavg) $(tail -n 1 "$tmp/gen.out")")
	calls=$(sed -n 's/^\([0-9]*\),.*raw_syscalls:sys_enter.*/\1/p' "$tmp/syscalls.txt")
	relayed=$(sed -n 's/.* relayed_all=\([0-9]*\).*/\1/p' "$tmp/gen.out" | awk '{s += $1} END {print s + 0}')
	if [[ -n "$calls" ]] && ((relayed > 0)); then
		many_sc[$name]=$(awk -v c="$calls" -v r="$relayed" 'BEGIN{printf "%.2f", c / r}')
	fi
	if [[ -n "$rec_pid" && -s "$tmp/$name.perf" ]]; then
		report=$(perf report -i "$tmp/$name.perf" --children --sort sym -q -g none --percent-limit 0 2>/dev/null || true)
		many_send[$name]=$(awk '$NF == "udp_sendmsg" || $NF == "udpv6_sendmsg" {sub(/%/, "", $1); s += $1} END {printf "%.1f", s}' <<<"$report")
		many_recv[$name]=$(awk '$NF == "udp_recvmsg" || $NF == "udpv6_recvmsg" {sub(/%/, "", $1); s += $1} END {printf "%.1f", s}' <<<"$report")
		rm -f "$tmp/$name.perf"
	fi
}

# measure_rate NAME
measure_rate() {
	local name=$1 port line r
	port=$(free_port)
	start_server "$name" "$port" || return 1
	if generate "$name" "$tmp/allocload" -mode rate -server "127.0.0.1:$port" -user "$user:$pass" \
		-inflight "$INFLIGHT" -duration "$RATE_DURATION" -label "$name"; then
		line=$(tail -n 1 "$tmp/gen.out")
		raw+=("part=rate load=$(loadavg) $line")
		r=$(field rate "$line")
		if [[ -n "$r" ]] && { [[ -z "${best_rate[$name]:-}" ]] || awk -v a="$r" -v b="${best_rate[$name]}" 'BEGIN{exit !(a>b)}'; }; then
			best_rate[$name]=$r
			rate_gen[$name]=$(field gen_cores "$line")
		fi
	else
		raw+=("part=rate load=$(loadavg) label=$name FAILED")
	fi
	stop_server
}

# measure_mem NAME
measure_mem() {
	local name=$1 port line
	port=$(free_port)
	start_server "$name" "$port" || return 1
	if generate "$name" "$tmp/allocload" -mode mem -server "127.0.0.1:$port" -user "$user:$pass" \
		-sockets "$MEM_ALLOCS" -inflight "$INFLIGHT" -label "$name"; then
		line=$(tail -n 1 "$tmp/gen.out")
		raw+=("part=mem load=$(loadavg) $line")
		mem_kb[$name]=$(field kb_per_alloc "$line")
		mem_idle[$name]=$(field idle_rss_kb "$line")
		mem_delta[$name]=$(field delta_kb "$line")
	else
		raw+=("part=mem load=$(loadavg) label=$name FAILED")
	fi
	stop_server
}

# busy_cores SECONDS: cores the host kept busy over the next SECONDS.
busy_cores() {
	local h0 h1
	h0=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
	sleep "$1"
	h1=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
	awk -v d="$((h1 - h0))" -v s="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", d / hz / s}'
}

# --- run ---------------------------------------------------------------------
if ((WAIT_QUIET > 0)); then
	waited=0
	while ((waited < WAIT_QUIET)); do
		busy=$(busy_cores 3)
		waited=$((waited + 3))
		if awk -v b="$busy" 'BEGIN{exit !(b < 0.2)}'; then
			break
		fi
		log "host busy ($busy cores), waiting"
	done
fi
load_start=$(cat /proc/loadavg)
start=$(date +%s)
for ((round = 1; round <= ROUNDS; round++)); do
	for name in $SERVERS; do
		if part relay; then
			log "round $round: $name relay ($RELAY_MODE, $RATES packets/s)"
			measure_relay "$name" || true
		fi
		if part rate; then
			log "round $round: $name allocations/s"
			measure_rate "$name" || true
		fi
		if part many; then
			log "round $round: $name $MANY_ALLOCS allocations at $MANY_RATES packets/s each"
			measure_many "$name" "$round" || true
		fi
	done
done
if part mem; then
	for name in $SERVERS; do
		log "$name: memory over $MEM_ALLOCS allocations"
		measure_mem "$name" || true
	done
fi
elapsed=$(($(date +%s) - start))
load_end=$(cat /proc/loadavg)

# --- report ------------------------------------------------------------------
verdict() { if awk "BEGIN{exit !($1)}"; then echo "met"; else echo "MISSED"; fi; }

report() {
	echo "TURN server benchmark on loopback: icebreaker against coturn"
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
	echo "host:     $(uname -sr), $ncpu CPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "go:       $("$GO" env GOVERSION)"
	echo "coturn:   $(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo unknown)"
	echo "load:     /proc/loadavg $load_start at the start, $load_end at the end"
	echo "pinned:   server on core 0, load generator on core 1; coturn -m 1, icebreaker --udp-sockets 1"
	local c i
	if part relay; then
		echo
		echo "1. ChannelData relay, mode $RELAY_MODE, $RELAY_SIZE-byte data, $RELAY_DURATION per rate, best of $ROUNDS (gso=$RELAY_GSO)"
		printf "%10s %14s %9s %16s %9s %10s\n" offered/s coturn_rx/s loss ib_rx/s loss ib/coturn
		local rate
		for rate in $RATES; do
			c=${best_rx[coturn/$rate]:-}
			i=${best_rx[icebreaker/$rate]:-}
			printf "%10s %14s %8s%% %16s %8s%% %10s\n" "$rate" "$(num "$c")" "${best_loss[coturn/$rate]:-n/a}" \
				"$(num "$i")" "${best_loss[icebreaker/$rate]:-n/a}" "$(ratio "$i" "$c")"
		done
		local top=${RATES##* } mid
		mid=$(tr ' ' '\n' <<<"$RATES" | sed -n 2p)
		c=${best_rx[coturn/$top]:-}
		i=${best_rx[icebreaker/$top]:-}
		if [[ -n "$c" && -n "$i" ]]; then
			echo "   target ib/coturn >= 1.1 at $top offered: $(ratio "$i" "$c") $(verdict "$i >= 1.1 * $c")"
		fi
		if [[ -n "$mid" && -n "${best_loss[icebreaker/$mid]:-}" ]]; then
			echo "   target no loss at $mid offered: ${best_loss[icebreaker/$mid]}% $(verdict "${best_loss[icebreaker/$mid]} == 0")"
		fi
	fi
	if part mem; then
		echo
		echo "2. Memory per allocation, $MEM_ALLOCS idle allocations (VmRSS after - before)"
		printf "%12s %12s %12s %12s\n" server idle_rss_kb delta_kb kb/alloc
		local n
		for n in $SERVERS; do
			printf "%12s %12s %12s %12s\n" "$n" "${mem_idle[$n]:-n/a}" "${mem_delta[$n]:-n/a}" "${mem_kb[$n]:-n/a}"
		done
		c=${mem_kb[coturn]:-}
		i=${mem_kb[icebreaker]:-}
		echo "   ib/coturn: $(ratio "$i" "$c")"
		if [[ -n "$i" ]]; then
			echo "   target <= 4 KB/allocation: $i $(verdict "$i <= 4")"
		fi
	fi
	if part rate; then
		echo
		echo "3. Allocations per second (Allocate, 401, Allocate with credentials), $INFLIGHT in flight, $RATE_DURATION, best of $ROUNDS"
		printf "%12s %12s %10s\n" server alloc/s gen_cores
		local n
		for n in $SERVERS; do
			printf "%12s %12s %10s\n" "$n" "$(num "${best_rate[$n]:-}")" "${rate_gen[$n]:-n/a}"
		done
		c=${best_rate[coturn]:-}
		i=${best_rate[icebreaker]:-}
		if [[ -n "$c" && -n "$i" ]]; then
			echo "   target ib/coturn >= 2: $(ratio "$i" "$c") $(verdict "$i >= 2 * $c")"
		fi
	fi
	if part many; then
		echo
		echo "4. $MANY_ALLOCS allocations, each with its own peer, ChannelData both ways, $RELAY_SIZE-byte data, $MANY_DURATION per rate, best of $ROUNDS"
		echo "   rate = packets/s per allocation (both directions); us/pkt = server CPU time per relayed packet"
		printf "%10s %12s %8s %9s %12s %8s %9s %14s\n" rate/alloc coturn_rx/s loss us/pkt ib_rx/s loss us/pkt ib/coturn_cpu
		local rate cu iu
		for rate in $MANY_RATES; do
			cu=${many_us[coturn/$rate]:-}
			iu=${many_us[icebreaker/$rate]:-}
			printf "%10s %12s %7s%% %9s %12s %7s%% %9s %14s\n" "$rate" "$(num "${many_rx[coturn/$rate]:-}")" "${many_loss[coturn/$rate]:-n/a}" "${cu:-n/a}" \
				"$(num "${many_rx[icebreaker/$rate]:-}")" "${many_loss[icebreaker/$rate]:-n/a}" "${iu:-n/a}" "$(ratio "$iu" "$cu")"
			if [[ -n "$cu" && -n "$iu" ]]; then
				echo "   target ib/coturn CPU per packet <= 0.5 at $rate/allocation: $(ratio "$iu" "$cu") $(verdict "$iu <= 0.5 * $cu")"
			fi
		done
		if ((count_syscalls)); then
			echo "   profiled run at $PROFILE_RATE/allocation, perf attached (its CPU figures are not used above):"
			printf "%14s %12s %11s %11s %14s %16s\n" server syscalls/pkt send_cpu recv_cpu floor_us/pkt floor/coturn_cpu
			local n f cu lowest=""
			cu=${many_us[coturn/$PROFILE_RATE]:-}
			for n in $SERVERS; do
				f=""
				if [[ -n "${many_send[$n]:-}" && -n "${many_us[$n/$PROFILE_RATE]:-}" ]]; then
					f=$(awk -v s="${many_send[$n]}" -v r="${many_recv[$n]}" -v u="${many_us[$n/$PROFILE_RATE]}" 'BEGIN{printf "%.2f", (s + r) / 100 * u}')
					if [[ -z "$lowest" ]] || awk -v a="$f" -v b="$lowest" 'BEGIN{exit !(a<b)}'; then
						lowest=$f
					fi
				fi
				printf "%14s %12s %10s%% %10s%% %14s %16s\n" "$n" "${many_sc[$n]:-n/a}" "${many_send[$n]:-n/a}" "${many_recv[$n]:-n/a}" "${f:-n/a}" "$(ratio "$f" "$cu")"
			done
			echo "   send_cpu, recv_cpu: the server's CPU samples under the kernel's udp_sendmsg (which on loopback also"
			echo "   delivers each datagram into the receiver's socket and wakes the receiver) and udp_recvmsg;"
			echo "   floor_us/pkt: that share of the server's CPU per relayed packet, the part that batching cannot remove."
			if [[ -n "$lowest" && -n "$cu" ]]; then
				echo "   a server spending nothing beyond the lower floor would be at $(ratio "$lowest" "$cu") coturn's CPU per packet"
			fi
		fi
	fi
	local behind busygen
	behind=$(printf '%s\n' "${raw[@]}" | awk '/part=relay/ {
		o = 0; r = 0
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^offered=/) o = substr($i, 9)
			if ($i ~ /^sent_rate=/) r = substr($i, 11)
		}
		if (o > 0 && r < 0.98 * o) n++
	} END { print n + 0 }')
	if ((behind > 0)); then
		echo
		echo "WARNING: in $behind relay runs the generator offered less than 98% of the rate (sent_rate below)."
	fi
	busygen=$(printf '%s\n' "${raw[@]}" | sed -n 's/.* gen_cores=\([0-9.]*\).*/\1/p' | sort -g | tail -n 1)
	if awk -v g="${busygen:-0}" 'BEGIN{exit !(g > 0.9)}'; then
		echo
		echo "WARNING: a load generator used up to $busygen cores: it may have set the pace, not the server."
	fi
	raw_runs "$elapsed" "${raw[@]}"
}

mkdir -p bench/results
out="bench/results/turn-$(date +%Y%m%d-%H%M%S).txt"
report | tee "$out"
log "written to $out"
