# Shell shared by bench/stun/run.sh and bench/turn/run.sh, sourced after the
# script has set LOG_PREFIX (its name in messages) and TMP_NAME (the name of
# its temporary directory). It gives:
#   tmp          a temporary directory, deleted on exit
#   srv_pid      the server being measured (start it yourself, stop_server stops it)
#   gen_pid      the load generator running in the background, killed on exit
#   log MSG      a message on stderr
#   want NAME    whether NAME is in $SERVERS
#   free_port    a loopback port free for UDP and TCP, below the ephemeral
#                and relay ranges
#   ratio A B    A/B as "1.23x", or n/a
#   num X        X rounded, or n/a
#   raw_runs SECONDS LINE...
#                the end of a report: a warning when other work kept the
#                host busy (other_cores), then every measurement line
# Ctrl-C or SIGTERM exits 130 after the cleanup.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$TMP_NAME.XXXXXX")
srv_pid=""
gen_pid=""

stop_server() {
	if [[ -n "$srv_pid" ]]; then
		kill "$srv_pid" 2>/dev/null || true
		wait "$srv_pid" 2>/dev/null || true
		srv_pid=""
	fi
}
cleanup() {
	if [[ -n "$gen_pid" ]]; then
		kill "$gen_pid" 2>/dev/null || true
		wait "$gen_pid" 2>/dev/null || true
	fi
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$LOG_PREFIX: $*" >&2; }
want() { [[ " $SERVERS " == *" $1 "* ]]; }

free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		if [[ -z "$(ss -Htuln "sport = :$p")" ]]; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2fx", a/b }'; }
num() { if [[ -n "$1" ]]; then printf "%.0f" "$1"; else echo "n/a"; fi; }

raw_runs() {
	local elapsed=$1 worst
	shift
	worst=$(printf '%s\n' "$@" | sed -n 's/.* other_cores=\([0-9.]*\).*/\1/p' | sort -g | tail -n 1)
	if awk -v w="${worst:-0}" 'BEGIN{exit !(w > 0.25)}'; then
		echo
		echo "WARNING: something else kept up to $worst cores busy during a run (other_cores below)."
		echo "         These numbers are not reliable; run again on an idle machine."
	fi
	echo
	echo "runs (${elapsed}s):"
	printf '  %s\n' "$@"
}
