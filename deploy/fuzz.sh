#!/usr/bin/env bash
# Runs every Go fuzz target of the module (issue 13), one at a time, for
# FUZZTIME each, and fails when any of them finds a crash. Targets are
# discovered with `go test -list '^Fuzz'` in the packages whose test
# files declare one, so a new FuzzX runs without editing this script.
#
#   FUZZTIME      time per target (Go duration, or Nx for N executions).
#                 Unset (CI): 20s, lowered so that the whole script,
#                 builds included (about 8s a target), ends within
#                 FUZZBUDGET seconds (default 300), never below 15s.
#   FUZZPARALLEL  fuzzing workers per target (default 1: CI machines and
#                 developer laptops are shared).
#   FUZZMINIMIZETIME  how long a worker minimizes each new input (default
#                 10s, not go's 60s: minimizing a new interesting input of
#                 a few kilobytes would otherwise eat a short run).
#   GO            the go command (default go).
#
# A crash leaves its input in the package's testdata/fuzz/FuzzX/; fix the
# bug and commit the file as a seed. The seed corpora alone run in every
# `go test`, so this script is only about finding new inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
parallel=${FUZZPARALLEL:-1}

# Packages (as ./dir) with a "func Fuzz" in a test file, tracked or new.
dirs=$(git ls-files --cached --others --exclude-standard -- '*_test.go' |
  xargs -r grep -l '^func Fuzz' | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
targets=()
for dir in $dirs; do
  for name in $("$GO" test -list '^Fuzz' -run '^$' "$dir" | grep '^Fuzz' || true); do
    targets+=("$dir $name")
  done
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found"; exit 1
fi

# A target whose -fuzztime runs out before the baseline run over its
# corpus (seeds plus the inputs cached from earlier runs) has finished
# fails with "context deadline exceeded": each target gets at least 15s.
budget=${FUZZBUDGET:-300}
echo "fuzz: ${#targets[@]} targets, ${FUZZTIME:-up to 20s} each, $parallel worker(s)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
left=${#targets[@]}
for t in "${targets[@]}"; do
  read -r dir name <<<"$t"
  fuzztime=${FUZZTIME:-}
  if [ -z "$fuzztime" ]; then
    # What is left of the budget, shared by the targets still to run,
    # less each one's build and baseline.
    per=$(( (budget - SECONDS) / left - 8 ))
    fuzztime="$(( per > 20 ? 20 : per < 15 ? 15 : per ))s"
  fi
  left=$((left - 1))
  start=$SECONDS
  if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$parallel" -fuzzminimizetime "${FUZZMINIMIZETIME:-10s}" "$dir" >"$log" 2>&1; then
    # Only the final progress line: how many inputs were tried.
    last=$(grep '^fuzz: elapsed' "$log" | tail -1 | sed 's/^fuzz: //')
    echo "ok   $dir $name (fuzzed $fuzztime, $((SECONDS - start))s in all; $last)"
  elif grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
    # go test -fuzz ends with "context deadline exceeded" when -fuzztime
    # runs out while its coordinator is still in a baseline or minimising
    # run; a crash always writes its input to testdata/fuzz, and none was.
    echo "ok   $dir $name (fuzzed $fuzztime, $((SECONDS - start))s in all; time ran out in a baseline or minimising run, no crash)"
  else
    echo "FAIL $dir $name"
    grep -v '^fuzz: elapsed' "$log" || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed:"; printf '  %s\n' "${failed[@]}"
  exit 1
fi
