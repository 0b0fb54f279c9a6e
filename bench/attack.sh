#!/usr/bin/env bash
# The attacks of project issue 13 at full size against `icebreaker serve` on
# loopback, with the server's CPU, RSS and descriptors and another client's
# relay round trip before and during. See bench/turn/attack.
#
#   bash bench/attack.sh                  # this tree
#   BEFORE=main bash bench/attack.sh      # also the tree of git ref main, first
#
# Environment overrides:
#   ATTACKS="permissions,replay,reservations,reflect,connect,rest,own"   ("" for none)
#   CHURN=1            also run the churn soak (10,000 allocations, 60 s) on a
#                      server without a per-user quota
#   CHURN_CLIENTS=10000 CHURN_FOR=60s
#   CONNECT_ALLOCS=10 CONNECT_PEERS=200   the Connect flood (2,000 Connects to
#                      peers that never answer; each peer is a loopback listener
#                      with a full accept queue)
#   ICEBREAKER=path    use this binary instead of building one
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

ATTACKS=${ATTACKS-"permissions,replay,reservations,reflect,connect,rest,own"}
CHURN=${CHURN:-0}
CHURN_CLIENTS=${CHURN_CLIENTS:-10000}
CHURN_FOR=${CHURN_FOR:-60s}
CONNECT_ALLOCS=${CONNECT_ALLOCS:-10}
CONNECT_PEERS=${CONNECT_PEERS:-200}
GO=${GO:-go}

LOG_PREFIX=attack TMP_NAME=icebreaker-attack
# shellcheck source=lib.sh
source "$repo/bench/lib.sh"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building the attack client"
"$GO" build -o "$tmp/attack" ./bench/turn/attack

build() { # build DIR OUT
	(cd "$1" && "$GO" build -o "$2" ./cmd/icebreaker)
}

# serve BINARY [FLAG...]: start icebreaker serve on a free loopback port,
# with $SERVE_ENV (VAR=VALUE ...) in its environment.
serve() {
	local bin=$1
	shift
	port=$(free_port)
	# shellcheck disable=SC2086
	env ICEBREAKER_DATA_DIR="$tmp" ${SERVE_ENV:-} "$bin" serve --listen 127.0.0.1 --port "$port" \
		--user mallory:m --user alice:a --user trudy:t --user-db none --allow-peer 127.0.0.0/8 --log-level warn "$@" \
		>"$tmp/serve.out" 2>"$tmp/serve.err" &
	srv_pid=$!
	for _ in $(seq 50); do
		grep -q "listening" "$tmp/serve.out" 2>/dev/null && return 0
		sleep 0.1
	done
	log "server did not start:"
	cat "$tmp/serve.err" >&2
	return 1
}

attack_one() { # NAME BINARY
	local name=$1 bin=$2
	echo "== $name"
	local main_attacks=${ATTACKS//connect/}
	main_attacks=${main_attacks//rest/}
	main_attacks=${main_attacks//own/}
	if [[ -n "${main_attacks//,/}" ]]; then
		serve "$bin"
		"$tmp/attack" -server "127.0.0.1:$port" -user mallory:m -victim alice:a -pid "$srv_pid" -attacks "$main_attacks"
		stop_server
	fi
	if [[ "$ATTACKS" == *connect* ]]; then # on a fresh server: mallory's quota is spent
		serve "$bin"
		"$tmp/attack" -server "127.0.0.1:$port" -user trudy:t -pid "$srv_pid" -attacks connect \
			-connect-allocations "$CONNECT_ALLOCS" -connect-peers "$CONNECT_PEERS"
		stop_server
	fi
	if [[ "$ATTACKS" == *rest* || "$ATTACKS" == *own* ]]; then
		local mport
		mport=$(free_port)
		serve "$bin" --rest-secret s3cret --external-ip 198.51.100.7/127.0.0.1 --allow-peer 198.51.100.7 \
			--metrics "127.0.0.1:$mport"
		"$tmp/attack" -server "127.0.0.1:$port" -user trudy:t -pid "$srv_pid" -attacks rest,own \
			-rest-secret s3cret -external-ip 198.51.100.7 -metrics "127.0.0.1:$mport"
		stop_server
	fi
	if [[ "$CHURN" == 1 ]]; then
		SERVE_ENV=ICEBREAKER_TURN_QUOTAS_ALLOCATIONS_PER_USER=0 serve "$bin"
		"$tmp/attack" -server "127.0.0.1:$port" -user alice:a -pid "$srv_pid" -attacks churn \
			-churn-clients "$CHURN_CLIENTS" -churn-for "$CHURN_FOR"
		stop_server
	fi
}

if [[ -n "${BEFORE:-}" ]]; then
	mkdir -p "$tmp/before"
	git archive "$BEFORE" | tar -x -C "$tmp/before"
	log "building icebreaker at $BEFORE"
	build "$tmp/before" "$tmp/icebreaker-before"
	attack_one "before ($BEFORE)" "$tmp/icebreaker-before"
fi
bin=${ICEBREAKER:-}
if [[ -z "$bin" ]]; then
	log "building icebreaker"
	build "$repo" "$tmp/icebreaker"
	bin=$tmp/icebreaker
fi
attack_one "after (this tree)" "$bin"
