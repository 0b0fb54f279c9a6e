#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzXxx(f *testing.F)) in the repository,
# one after the other, for DURATION each, and prints how many executions
# each reached.
#
# Usage: scripts/fuzz.sh [DURATION] [DIR...]
#   DURATION  a -fuzztime value: 20s (default), 2m, or 10000x (executions)
#   DIR       limit the search to these directories (default: the repo)
#
# Go fuzzes one target of one package per run:
#   go test -run='^$' -fuzz='^FuzzName$' -fuzztime=DURATION ./pkg
# A failing input is written by Go to pkg/testdata/fuzz/FuzzName/; keep it
# there, fix the bug, and it stays as a regression test for `go test`.
# Exit status: 0 when every target passed, 1 otherwise.
set -uo pipefail

duration=${1:-20s}
shift || true
cd "$(dirname "$0")/.." || exit 1
dirs=("$@")
[ ${#dirs[@]} -eq 0 ] && dirs=(.)

GO=${GO:-go}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

# Discover targets: "dir name" pairs from *_test.go files, skipping
# testdata and vendored code.
mapfile -t targets < <(
  grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(' "${dirs[@]}" 2>/dev/null |
    grep -vE '(^|/)(testdata|vendor)/' |
    sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#' |
    sort -u
)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found in ${dirs[*]}" >&2
  exit 1
fi

echo "fuzz.sh: ${#targets[@]} targets, ${duration} each"
failed=0
summary=()
for entry in "${targets[@]}"; do
  dir=${entry% *}
  name=${entry##* }
  pkg=./${dir#./}
  log="$logdir/$(echo "$pkg.$name" | tr '/' '_').log"
  printf '%-40s %-32s ' "$pkg" "$name"
  start=$SECONDS
  "$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$duration" "$pkg" >"$log" 2>&1
  rc=$?
  # The fuzzer's progress lines read "fuzz: elapsed: 3s, execs: 12345 (...)";
  # the last one is the total.
  execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n1 | awk '{print $2}')
  execs=${execs:-0}
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result=FAIL
    failed=1
  fi
  printf '%-5s %12s execs  %4ss\n' "$result" "$execs" "$((SECONDS - start))"
  summary+=("$result $pkg $name $execs")
  if [ $rc -ne 0 ]; then
    sed 's/^/    | /' "$log" | tail -n 40
    ls -1 "$dir/testdata/fuzz/$name" 2>/dev/null | sed "s#^#    crasher: $dir/testdata/fuzz/$name/#"
  fi
done

echo
echo "fuzz.sh: summary (result package target execs)"
printf '  %s\n' "${summary[@]}"
exit $failed
