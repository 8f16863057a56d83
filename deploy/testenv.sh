#!/usr/bin/env bash
# testenv.sh CMD [ARGS...] runs CMD with real PostgreSQL and Redis servers
# for the tests. It uses the servers named by GATEWAY_TEST_DATABASE_URL and
# GATEWAY_TEST_REDIS_URL when they are set; otherwise it starts throwaway
# ones on free ports from the installed binaries (initdb/pg_ctl,
# redis-server) and stops them afterwards. Missing binaries are installed
# with apt-get when running as root on Debian/Ubuntu; elsewhere it prints
# the command to install them and fails.
set -euo pipefail

need_pg=1; need_redis=1
[ -n "${GATEWAY_TEST_DATABASE_URL:-}" ] && need_pg=0
[ -n "${GATEWAY_TEST_REDIS_URL:-}" ] && need_redis=0

find_pg_bin() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"; return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

install_hint() {
  echo "testenv: $1 is not installed. Install it, for example:" >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y postgresql redis-server" >&2
  echo "  macOS:         brew install postgresql redis" >&2
  echo "or point GATEWAY_TEST_DATABASE_URL / GATEWAY_TEST_REDIS_URL at running servers." >&2
  exit 1
}

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "testenv: installing $* with apt-get" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    return 1
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gwtestenv.XXXXXX")
chmod 755 "$tmp"
cleanup() {
  if [ -n "${pg_started:-}" ]; then
    $as_pg "$pg_bin/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -n "${redis_pid:-}" ]; then
    kill "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

as_pg=""
if [ "$need_pg" = 1 ]; then
  pg_bin=$(find_pg_bin) || { apt_install postgresql && pg_bin=$(find_pg_bin); } || install_hint PostgreSQL
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: run it as the postgres user.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    as_pg="runuser -u postgres --"
    mkdir -p "$tmp/pg" && chown postgres "$tmp/pg"
  fi
  pg_port=$(free_port)
  $as_pg "$pg_bin/initdb" -D "$tmp/pg" -U postgres -A trust >/dev/null
  $as_pg "$pg_bin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg/log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $tmp/pg -F -c fsync=off -c max_connections=300" start >/dev/null
  pg_started=1
  export GATEWAY_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
  echo "testenv: started PostgreSQL on 127.0.0.1:$pg_port" >&2
fi

if [ "$need_redis" = 1 ]; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server || install_hint Redis
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" --daemonize no &
  redis_pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    sleep 0.1
  done
  export GATEWAY_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
  echo "testenv: started Redis on 127.0.0.1:$redis_port" >&2
fi

"$@"
