#!/usr/bin/env bash
# run.sh measures the gateway against a bare proxy in one run and prints one
# table (and, in a full run, writes it into README.md's performance
# section). It builds the gateway and the bench tool, starts the fake
# upstream, the floor proxy (`bench floor`) and gateways with dedupe off,
# the embedded store and Postgres + Redis (a fresh database and key prefix
# on the machine's servers), runs every line of the table and stops
# everything on exit. Tunables (environment):
#   BENCH_SHORT=1            smoke test: 1 s runs, 300 held streams, README untouched
#   BENCH_DURATION           peak run of each line [6s]
#   BENCH_LATENCY_DURATION   latency run of each line, at a set rate [4s]
#   BENCH_CONCURRENCY        connections of the load tool [32]
#   BENCH_STREAMS            streams held open at once [10000, capped by the file limit]
#   BENCH_HOLD               gateway of the held streams: embedded (recorded) or off [embedded]
#   BENCH_DATABASE_URL       Postgres where the run's database is created [postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable]
#   BENCH_REDIS_ADDR         Redis [127.0.0.1:6379]
#   BENCH_README=0|1         write the table into README.md [1, 0 with BENCH_SHORT]
#   BENCH_RECORDS=FILE       keep the JSON records of the run
#   BENCH_PROFILE=DIR        save CPU and allocation profiles of each gateway peak run (slows it)
#   BENCH_SOAK_DURATION      the soak's length [3m, 30s with BENCH_SHORT]
#   BENCH_SOAK_RATE          the soak's new keys per second [100, 50 with BENCH_SHORT]
#
# A line of the table is one call below: `line LABEL REFS RATE_FROM PID URL
# load-flags...` runs a closed-loop peak and a latency run at half the
# lowest peak of RATE_FROM (or at RATE_FROM requests/s when it is a number).
set -euo pipefail

cd "$(dirname "$0")/../.."
GO=${GO:-go}
short=${BENCH_SHORT:-0}
if [ "$short" = 1 ]; then
  duration=${BENCH_DURATION:-1s}; lat_duration=${BENCH_LATENCY_DURATION:-1s}
  streams=${BENCH_STREAMS:-300}; readme=${BENCH_README:-0}
  soak_duration=${BENCH_SOAK_DURATION:-30s}; soak_rate=${BENCH_SOAK_RATE:-50}; soak_every=5s; soak_ttl=10s
else
  duration=${BENCH_DURATION:-6s}; lat_duration=${BENCH_LATENCY_DURATION:-4s}
  streams=${BENCH_STREAMS:-10000}; readme=${BENCH_README:-1}
  soak_duration=${BENCH_SOAK_DURATION:-3m}; soak_rate=${BENCH_SOAK_RATE:-100}; soak_every=15s; soak_ttl=30s
fi
conc=${BENCH_CONCURRENCY:-32}
hold_kind=${BENCH_HOLD:-embedded}
admin_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
redis_addr=${BENCH_REDIS_ADDR:-127.0.0.1:6379}
profile_dir=${BENCH_PROFILE:-}

run_id="bench_$(date +%s)_$$"
tmp=$(mktemp -d)
records=${BENCH_RECORDS:-$tmp/records.jsonl}
pids=()
db_created=""
soak_stop=""
cleanup() {
  local pid
  if [ -n "$soak_stop" ]; then $soak_stop >/dev/null 2>&1 || true; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$db_created" ]; then
    psql "$admin_url" -qXc "DROP DATABASE IF EXISTS $run_id WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  redis-cli -h "${redis_addr%:*}" -p "${redis_addr##*:}" --scan --pattern "$run_id:*" 2>/dev/null |
    xargs -r redis-cli -h "${redis_addr%:*}" -p "${redis_addr##*:}" del >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building gateway, fake upstream and bench tool..."
"$GO" build -o "$tmp/" ./gateway ./deploy/fakeupstream ./deploy/bench
# The same gateway with the OpenTelemetry SDK compiled out: its line beside
# "dedupe off" is what tracing off costs a request (issue 16).
"$GO" build -tags notracing -o "$tmp/gateway-notracing" ./gateway

# Each held stream costs the gateway two descriptors (client, upstream).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max_streams=$(( ($(ulimit -n) - 300) / 2 ))
if [ "$streams" -gt "$max_streams" ]; then
  echo "file limit $(ulimit -n) (hard limit $(ulimit -Hn)): holding $max_streams streams instead of $streams"
  streams=$max_streams
fi

# wait_for FILE PATTERN: waits (15 s at most) for a line of FILE to match
# PATTERN and prints the first match.
wait_for() {
  local i
  for i in $(seq 150); do
    if grep -m1 -oE "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: timed out waiting for $2 in $1:" >&2
  cat "$1" >&2
  return 1
}

"$tmp/fakeupstream" -listen 127.0.0.1:0 >"$tmp/fake.log" 2>&1 &
pids+=($!)
fake_base=$(wait_for "$tmp/fake.log" 'http://127\.0\.0\.1:[0-9]+')
fake_url="$fake_base/v1"

"$tmp/bench" floor -upstream "$fake_base" >"$tmp/floor.log" 2>&1 &
floor_pid=$!
pids+=($floor_pid)
floor_url=$(wait_for "$tmp/floor.log" 'http://127\.0\.0\.1:[0-9]+')

psql "$admin_url" -qXc "CREATE DATABASE $run_id" >/dev/null
db_created=1
pg_url="${admin_url%%\?*}"; pg_url="${pg_url%/*}/$run_id?sslmode=disable"

key="sk-bench-$RANDOM$RANDOM"
admin_key="admin-bench-$RANDOM$RANDOM"

# gateway NAME STORE_YAML [BINARY]: writes NAME.yaml and starts a gateway
# (BINARY, default the normal build) on it; sets gw_pid and gw_url.
gateway() {
  local name=$1 store=$2 bin=${3:-$tmp/gateway}
  cat >"$tmp/$name.yaml" <<YAML
listen: 127.0.0.1:0
auth:
  mode: keys
  keys:
    - {tenant: bench, key: $key}
  admin_key: $admin_key
log: {level: info, format: json}
debug: {pprof: true}
$store
providers:
  fake: {base_url: "$fake_url", api_key: bench-upstream-key, timeout: 60s, first_byte_timeout: 10s, max_conns: 20000}
routes:
  - model: "*"
    targets: [{provider: fake}]
YAML
  # Request logs go to a file, as they would in production; the level
  # stays info because the listening address is read from the log.
  "$bin" serve -config "$tmp/$name.yaml" >"$tmp/$name.log" 2>&1 &
  gw_pid=$!
  pids+=($gw_pid)
  gw_url="http://$(wait_for "$tmp/$name.log" '"addr":"127\.0\.0\.1:[0-9]+"' | cut -d'"' -f4)"
}

# stop PID: stops one process of this run and waits for it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

load() {
  echo "== $*" | sed "s/$key/KEY/g; s/$admin_key/ADMIN/g" >>"$tmp/load.log"
  "$tmp/bench" load -key "$key" -concurrency "$conc" -json "$records" "$@" >>"$tmp/load.log" 2>&1 ||
    { echo "run.sh: load run failed: $*" >&2; tail -20 "$tmp/load.log" >&2; return 1; }
}

# profile LABEL URL SECONDS: fetches CPU and allocation profiles of a
# gateway in the background while a peak run goes on (BENCH_PROFILE).
prof_pids=()
profile() {
  [ -n "$profile_dir" ] || return 0
  mkdir -p "$profile_dir"
  local slug
  slug=$(echo "$1" | tr -c 'a-zA-Z0-9\n' '-' | tr -s '-')
  curl -s -H "Authorization: Bearer $admin_key" -o "$profile_dir/$slug.cpu.pprof" "$2/debug/pprof/profile?seconds=$3" &
  prof_pids+=($!)
  curl -s -H "Authorization: Bearer $admin_key" -o "$profile_dir/$slug.allocs.pprof" "$2/debug/pprof/allocs?seconds=$3" &
  prof_pids+=($!)
}

wait_profiles() {
  local pid
  for pid in "${prof_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  prof_pids=()
}

# line LABEL REFS RATE_FROM PID URL FLAGS...: one line of the table.
line() {
  local label=$1 refs=$2 rate_from=$3 pid=$4 url=$5
  shift 5
  local extra=()
  if [ "$url" != "$floor_url" ] && [[ "$label" != read\ floor* ]]; then
    extra=(-pprof "$url" -admin-key "$admin_key")
    profile "$label" "$url" "$(( ${duration%s} ))"
  fi
  echo "  $label"
  load -label "$label" -ref "$refs" -phase peak -pid "$pid" -target "$url" -duration "$duration" "${extra[@]}" "$@"
  wait_profiles
  if [[ "$rate_from" =~ ^[0-9]+$ ]]; then
    load -label "$label" -ref "$refs" -phase latency -rate "$rate_from" -target "$url" -duration "$lat_duration" "$@"
  elif [ "$rate_from" != "-" ]; then
    load -label "$label" -ref "$refs" -phase latency -rate-from "$rate_from" -target "$url" -duration "$lat_duration" "$@"
  fi
}

# read_floor LABEL LIKE READFLOOR-FLAGS...: starts `bench readfloor` on
# one stored task and measures it as a line, its latency at the rate of
# LIKE's latency run.
read_floor() {
  local label=$1 like=$2
  shift 2
  "$tmp/bench" readfloor "$@" >"$tmp/readfloor.log" 2>&1 &
  local rf_pid=$!
  pids+=($rf_pid)
  local rf_url
  rf_url=$(wait_for "$tmp/readfloor.log" 'http://127\.0\.0\.1:[0-9]+')
  line "$label" "floor" "-" "$rf_pid" "$rf_url" -mode same-key
  load -label "$label" -ref floor -phase latency -rate-like "$like" -target "$rf_url" -duration "$lat_duration" -mode same-key
  stop "$rf_pid"
}

# latency_at LABEL RATE URL FLAGS...: one more latency run of a line, at
# another rate (a reference for lines measured at that rate).
latency_at() {
  local label=$1 rate=$2 url=$3
  shift 3
  load -label "$label" -phase latency -rate "$rate" -target "$url" -duration "$lat_duration" "$@"
}

echo "fake upstream $fake_url, floor $floor_url; $conc connections, $duration peak + $lat_duration latency per line"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- non-stream: the floor, dedupe off, embedded store --------------------
line "floor" "" "floor" "$floor_pid" "$floor_url" -mode unique

gateway off "dedupe: {enabled: false}"
off_pid=$gw_pid off_url=$gw_url
line "dedupe off" "floor" "floor" "$off_pid" "$off_url" -mode unique
gateway notracing "dedupe: {enabled: false}" "$tmp/gateway-notracing"
line "dedupe off, built without tracing" "floor" "floor" "$gw_pid" "$gw_url" -mode unique -vs "dedupe off"
stop "$gw_pid"

gateway embedded "store: {kind: embedded, path: $tmp/gw.db}"
emb_pid=$gw_pid emb_url=$gw_url
line "embedded, new keys" "floor" "floor" "$emb_pid" "$emb_url" -mode unique
# One completed key, replayed by every request (the first one leads).
line "embedded, replays" "read floor (embedded),floor" "floor" "$emb_pid" "$emb_url" -mode same-key -idem-key "replay-embedded-$run_id"
# The read floor opens the store file after the gateway closed it, and is
# measured at the rate of the replays' latency run.
stop "$emb_pid"
read_floor "read floor (embedded)" "embedded, replays" -store embedded -path "$tmp/gw.db" -tenant bench -key "replay-embedded-$run_id"

# --- Postgres + Redis -------------------------------------------------------
pg_store="store: {kind: postgres, url: \"$pg_url\"}
lock: {kind: redis, redis: {addrs: [$redis_addr], key_prefix: \"$run_id:\"}}"
gateway postgres "$pg_store"
pg_pid=$gw_pid pg_gw_url=$gw_url
# The write floor: the store's SQL for each new task from a plain pgx loop,
# one statement and one commit at a time (the gateway created the schema).
write_floor="Postgres write floor (plain pgx)"
echo "  $write_floor"
load -label "$write_floor" -phase peak -mode tasks -store-url "$pg_url" -wal-url "$pg_url" -duration "$duration"
load -label "$write_floor" -phase latency -rate-from "$write_floor" -mode tasks -store-url "$pg_url" -duration "$lat_duration"
line "Postgres + Redis, new keys" "floor" "floor" "$pg_pid" "$pg_gw_url" -mode unique -vs "$write_floor" -wal-url "$pg_url"
line "Postgres + Redis, replays" "read floor (Postgres),floor" "floor" "$pg_pid" "$pg_gw_url" -mode same-key -idem-key "replay-postgres-$run_id"
read_floor "read floor (Postgres)" "Postgres + Redis, replays" -store postgres -url "$pg_url" -tenant bench -key "replay-postgres-$run_id"

# --- streams (5 chunks each) -------------------------------------------------
line "floor stream" "" "floor stream" "$floor_pid" "$floor_url" -mode unique -stream -chunks 5
latency_at "floor stream" 200 "$floor_url" -mode unique -stream -chunks 5
line "stream, dedupe off" "floor stream" "floor stream" "$off_pid" "$off_url" -mode unique -stream -chunks 5
load -label "Begin write (Postgres)" -phase latency -mode begin -rate 200 -store-url "$pg_url" -target "$pg_gw_url" -duration "$lat_duration"
line "recorded stream, Postgres + Redis" "floor stream" 200 "$pg_pid" "$pg_gw_url" -mode unique -stream -chunks 5 -beyond "Begin write (Postgres)"

# --- 60 simultaneous duplicates of each new key --------------------------------
line "60 duplicates per key, Postgres + Redis" "" "-" "$pg_pid" "$pg_gw_url" -mode dup -concurrency 60

# --- streams held open at once ---------------------------------------------------
stop "$off_pid"
stop "$pg_pid"
if [ "$hold_kind" = off ]; then
  gateway hold "dedupe: {enabled: false}"
  hold_label="$streams open streams, dedupe off"
else
  gateway hold "store: {kind: embedded, path: $tmp/hold.db}"
  hold_label="$streams open streams, embedded (recorded)"
fi
# 40 chunks 500 ms apart: every stream stays open 20 s, so all of them are
# open at once for a while even when a loaded machine slows the ramp.
echo "  $hold_label"
load -label "$hold_label" -phase peak -mode hold -stream -concurrency "$streams" -rate 2000 -pid "$gw_pid" \
  -target "$gw_url" -model long-stream-40x500ms -chunks 40 -duration 2m -timeout 2m

# --- soak: new keys at a steady rate on a Postgres of its own ------------------
# The machine's shared server may run with autovacuum off (a test
# server); a table's health is judged on one configured like production,
# with autovacuum waking every 10 s rather than every minute so that a
# few minutes see several passes.
soak_postgres() {
  local pg_bin as_pg="" port
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pg_bin/initdb" ] || { echo "run.sh: no initdb for the soak's Postgres" >&2; return 1; }
  mkdir -p "$tmp/soakpg"
  if [ "$(id -u)" = 0 ]; then
    as_pg="runuser -u postgres --"
    chmod 755 "$tmp"
    chown postgres "$tmp/soakpg"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  $as_pg "$pg_bin/initdb" -D "$tmp/soakpg" -U postgres -A trust >/dev/null
  $as_pg "$pg_bin/pg_ctl" -D "$tmp/soakpg" -l "$tmp/soakpg/log" -w \
    -o "-h 127.0.0.1 -p $port -k $tmp/soakpg -c autovacuum_naptime=10s" start >/dev/null
  soak_stop="$as_pg $pg_bin/pg_ctl -D $tmp/soakpg -m fast stop"
  soak_url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}
stop "$gw_pid" # the held streams' gateway
echo "  soak: $soak_rate new keys/s for $soak_duration, key_ttl $soak_ttl"
soak_postgres
gateway soak "store: {kind: postgres, url: \"$soak_url\"}
dedupe: {key_ttl: $soak_ttl, lease: 3s, reap_interval: 2s}"
"$tmp/bench" soak -target "$gw_url" -key "$key" -store-url "$soak_url" -rate "$soak_rate" \
  -duration "$soak_duration" -every "$soak_every" -model slow >"$tmp/soak.txt" 2>&1 || { cat "$tmp/soak.txt" >&2; exit 1; }
stop "$gw_pid"
$soak_stop >/dev/null 2>&1 || true
soak_stop=""

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
table="$tmp/table.md"
"$tmp/bench" table "$records" >"$table"
echo
cat "$table"
echo
cat "$tmp/soak.txt"
if [ "$readme" = 1 ]; then
  "$tmp/bench" table -readme README.md "$records"
  echo "README.md updated (the soak's figures are above, not in it)"
fi
