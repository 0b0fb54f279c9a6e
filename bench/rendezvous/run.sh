#!/usr/bin/env bash
# Rendezvous (magic-wormhole mailbox) server benchmark on loopback: the
# icebreaker serve mailbox against the reference Python server
# (python3-magic-wormhole-mailbox-server), side by side in one run. See
# README.md.
#
#   rate: rendezvous completed per second (two fresh clients: allocate,
#         claim, open, pake, release, version, close) with C in flight, and
#         the p50/p99 latency of a message through the mailbox.
#   mem:  server RSS growth over MAILBOXES open mailboxes, per mailbox.
#
# Environment overrides:
#   SERVERS="icebreaker reference"   which servers to run
#   DURATION=15s                     measured time of the rate part, per server
#   C=16                             rendezvous in flight
#   MAILBOXES=2000                   mailboxes for the memory part
#   ICEBREAKER=path                  use this icebreaker binary instead of building one
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

SERVERS=${SERVERS:-"icebreaker reference"}
DURATION=${DURATION:-15s}
C=${C:-16}
MAILBOXES=${MAILBOXES:-2000}
GO=${GO:-go}
PY=/usr/bin/python3

LOG_PREFIX=rdvbench TMP_NAME=icebreaker-rdvbench
# shellcheck source=../lib.sh
source "$repo/bench/lib.sh"

if want reference && ! "$PY" -c 'import wormhole_mailbox_server' 2>/dev/null; then
	if [[ "${CI:-}" == "true" ]]; then
		log "the reference server is not installed (python3-magic-wormhole-mailbox-server)"
		exit 1
	fi
	log "the reference server is not installed (apt-get install python3-magic-wormhole-mailbox-server), skipping it"
	SERVERS=${SERVERS//reference/}
fi

log "building into $tmp"
"$GO" build -o "$tmp/" ./bench/rendezvous/loadgen
if want icebreaker; then
	if [[ -n "${ICEBREAKER:-}" ]]; then
		cp "$ICEBREAKER" "$tmp/icebreaker"
	else
		"$GO" build -o "$tmp/icebreaker" ./cmd/icebreaker
	fi
	# Limits as high as the reference server's (it has none): the load
	# comes from one address.
	cat >"$tmp/icebreaker.yaml" <<-YAML
		rendezvous:
		  limits:
		    mailboxes_per_ip: 1000000
		    conns_per_ip: 1000000
		    rate: 100000000
		    burst: 100000000
	YAML
fi

# start_server NAME PORT: starts the server with a fresh database, sets
# srv_pid, and waits (at most 30 s) until its port accepts connections.
start_server() {
	local name=$1 port=$2 i
	rm -f "$tmp/$name".db*
	case $name in
	icebreaker)
		"$tmp/icebreaker" serve --config "$tmp/icebreaker.yaml" --listen 127.0.0.1 --port 0 --user-db none \
			--rendezvous "127.0.0.1:$port" --transit-relay off --rendezvous-db "$tmp/$name.db" \
			--log-level warn >"$tmp/$name.log" 2>&1 &
		;;
	reference)
		(cd "$tmp" && exec "$PY" -m twisted wormhole-mailbox --channel-db="$tmp/$name.db" \
			--port="tcp:$port:interface=127.0.0.1") >"$tmp/$name.log" 2>&1 &
		;;
	esac
	srv_pid=$!
	for ((i = 0; i < 300; i++)); do
		if [[ -n "$(ss -Htln "sport = :$port")" ]]; then
			return 0
		fi
		sleep 0.1
	done
	log "$name did not listen on $port; its log:"
	cat "$tmp/$name.log" >&2
	return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status"; }

declare -A rate p50 p99 permb
for s in $SERVERS; do
	port=$(free_port)
	start_server "$s" "$port"
	url="ws://127.0.0.1:$port/v1"
	log "$s: rate for $DURATION, $C in flight"
	line=$("$tmp/loadgen" -url "$url" -mode rate -duration "$DURATION" -c "$C")
	log "$s: $line"
	rate[$s]=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$line")
	p50[$s]=$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
	p99[$s]=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
	stop_server

	start_server "$s" "$port"
	"$tmp/loadgen" -url "$url" -mode rate -duration 1s -c 4 >/dev/null # warm up
	before=$(rss_kb)
	log "$s: opening $MAILBOXES mailboxes"
	mline=$("$tmp/loadgen" -url "$url" -mode mem -mailboxes "$MAILBOXES")
	sleep 1
	after=$(rss_kb)
	permb[$s]=$(awk -v a="$after" -v b="$before" -v n="$MAILBOXES" 'BEGIN{printf "%.0f", (a-b)*1024/n}')
	log "$s: $mline, RSS $before kB -> $after kB"
	stop_server
done

mkdir -p bench/results
out="bench/results/rendezvous-$(date +%Y%m%d-%H%M%S).txt"
{
	echo "rendezvous server benchmark on loopback ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "rate: $DURATION, $C rendezvous in flight; mem: $MAILBOXES open mailboxes"
	printf "%-12s %14s %10s %10s %16s\n" server "rendezvous/s" "p50 ms" "p99 ms" "bytes/mailbox"
	for s in $SERVERS; do
		printf "%-12s %14s %10s %10s %16s\n" "$s" "${rate[$s]}" "${p50[$s]}" "${p99[$s]}" "${permb[$s]}"
	done
	if want icebreaker && want reference; then
		echo "rate ratio icebreaker/reference: $(ratio "${rate[icebreaker]}" "${rate[reference]}") (target >= 10x)"
		echo "memory per mailbox icebreaker/reference: $(ratio "${permb[icebreaker]}" "${permb[reference]}")"
	fi
} | tee "$out"
