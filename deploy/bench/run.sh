#!/usr/bin/env bash
# run.sh builds the gateway, the fake upstream and the load tool, starts the fake upstream and
# a gateway (embedded store in a temp dir, one client key, route "*" to the
# fake) on free loopback ports, runs the load tool in a few modes and stops
# everything on exit. Tunables (environment):
#   BENCH_DURATION     per run, default 8s (four runs: about 40 s in all)
#   BENCH_CONCURRENCY  workers, default 64
set -euo pipefail

cd "$(dirname "$0")/../.."
GO=${GO:-go}
duration=${BENCH_DURATION:-8s}
concurrency=${BENCH_CONCURRENCY:-64}

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building gateway, fake upstream and load tool..."
"$GO" build -o "$tmp/" ./gateway ./deploy/fakeupstream
"$GO" build -o "$tmp/bench" ./deploy/bench

# wait_for FILE PATTERN: waits (10 s at most) for a line of FILE to match
# PATTERN and prints the first match.
wait_for() {
  local i
  for i in $(seq 100); do
    if grep -m1 -oE "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: timed out waiting for $2 in $1:" >&2
  cat "$1" >&2
  return 1
}

# Port 0 lets the kernel choose a free port; both programs print the one they got.
"$tmp/fakeupstream" -listen 127.0.0.1:0 >"$tmp/fake.log" 2>&1 &
pids+=($!)
fake_url=$(wait_for "$tmp/fake.log" 'http://127\.0\.0\.1:[0-9]+/v1')

key="sk-bench-$RANDOM$RANDOM"
cat >"$tmp/gateway.yaml" <<YAML
listen: 127.0.0.1:0
auth:
  mode: keys
  keys:
    - {tenant: bench, key: $key}
log: {level: info, format: json}
store: {kind: embedded, path: $tmp/gw.db}
providers:
  fake: {base_url: "$fake_url", api_key: bench-upstream-key, timeout: 30s, first_byte_timeout: 10s, max_conns: 2000}
routes:
  - model: "*"
    targets: [{provider: fake}]
YAML
# Request logs go to a file, as they would in production, not the terminal;
# the level stays info because the listening address is read from the log.
"$tmp/gateway" serve -config "$tmp/gateway.yaml" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
addr=$(wait_for "$tmp/gateway.log" '"addr":"127\.0\.0\.1:[0-9]+"' | cut -d'"' -f4)
target="http://$addr"
echo "fake upstream $fake_url, gateway $target, $concurrency workers, $duration per run"

summary="$tmp/summary"
bench() {
  echo
  echo "== $*"
  "$tmp/bench" -target "$target" -key "$key" -concurrency "$concurrency" -duration "$duration" "$@" | tee -a "$summary"
  echo >>"$summary"
}
bench -mode unique             # every request leads: store insert, upstream call, completion
bench -mode unique -stream     # the same, streamed: relay while recording the transcript
bench -mode same-key           # one key: the first leads, the rest replay or wait
bench -mode derived -stream    # no key, one body: derived key, replayed transcripts

echo
echo "== summary (req/s, latency p50/p99, stream ttfb p50/p99, replays, errors)"
awk '/^target/ {t=$0; f=""} /^requests/ {r=$5" "$6} /^latency/ {l=$2" "$4} /^ttfb/ {f=" ttfb "$2" "$3} /^replayed/ {p=" replayed "$2} /^errors/ {print t; print "   ", r, l f p, "errors:", substr($0, 13)}' "$summary"
