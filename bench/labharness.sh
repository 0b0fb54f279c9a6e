# Shell shared by the benchmarks whose harness is a Go test that builds NAT
# labs (bench/ice/run.sh, bench/peer/run.sh), sourced after the script has
# set TMP_NAME (the name of its temporary directory). It gives:
#   tmp            a temporary directory, deleted on exit
#   test_pid       the harness running in the background (run_harness sets it)
#   run_harness LOG PREFIX DIR CMD...
#                  runs CMD (the compiled test and its flags) in DIR with its
#                  output in LOG, shows the lines that start with PREFIX (the
#                  test's progress lines) on stderr while it runs, and returns
#                  its exit status
#   need_lab_tools exits unless ip, nft and conntrack are installed
#   check_run_timeout VALUE
#                  exits unless VALUE is whole seconds ("30s")
#   build_icebreaker
#                  puts the icebreaker binary in $tmp: a copy of $ICEBREAKER,
#                  or one built from this tree with $GO
# It needs log (the script's message function) defined before.
# On exit (Ctrl-C and SIGTERM exit 130) it kills the harness and, since a
# killed test binary runs no cleanup, deletes the namespaces its labs made
# (named nl-PID-...) and kills what runs in them.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$TMP_NAME.XXXXXX")
test_pid=""

reap_harness() {
	if [[ -n "$test_pid" ]]; then
		kill "$test_pid" 2>/dev/null || true
		wait "$test_pid" 2>/dev/null || true
		local ns pid
		for ns in /run/netns/nl-"$test_pid"-*; do
			[[ -e $ns ]] || continue
			ns=${ns##*/}
			for pid in $(ip netns pids "$ns" 2>/dev/null); do
				kill -9 "$pid" 2>/dev/null || true
			done
			ip netns del "$ns" 2>/dev/null || true
		done
	fi
	rm -rf "$tmp"
}
trap reap_harness EXIT
trap 'exit 130' INT TERM

run_harness() {
	local out=$1 prefix=$2 dir=$3 rc=0 tail_pid
	shift 3
	: >"$out" # before tail opens it
	(cd "$dir" && exec "$@") >"$out" 2>&1 &
	test_pid=$!
	tail -n +1 -f --pid "$test_pid" "$out" | sed -n -u "s/^ *[a-z_]*_test.go:[0-9]*: \\($prefix.*\\)/\\1/p" >&2 &
	tail_pid=$!
	wait "$test_pid" || rc=$?
	test_pid=""
	wait "$tail_pid" 2>/dev/null || true
	return "$rc"
}

need_lab_tools() {
	local tool
	for tool in ip nft conntrack; do
		command -v "$tool" >/dev/null || {
			log "$tool not found (apt-get install -y iproute2 nftables conntrack)"
			exit 1
		}
	done
}

check_run_timeout() {
	if [[ ! $1 =~ ^[0-9]+s$ ]]; then
		log "RUN_TIMEOUT=$1: give whole seconds, such as 30s"
		exit 1
	fi
}

build_icebreaker() {
	log "building into $tmp"
	if [[ -n "${ICEBREAKER:-}" ]]; then
		cp "$ICEBREAKER" "$tmp/icebreaker"
	elif ! "$GO" build -o "$tmp/icebreaker" ./cmd/icebreaker; then
		log "icebreaker does not build"
		exit 1
	fi
}
