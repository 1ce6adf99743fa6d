#!/usr/bin/env bash
# Measures Tessera on the durable stores (PostgreSQL, MySQL/MariaDB, tiered = PostgreSQL + Redis)
# and prints the rows for BENCHMARKS.md, each next to its ceiling measured in the same run: a
# pgbench / mariadb-slap one-row UPDATE per transaction on the same database, 16 clients, each
# on its own row (as 16 refresh chains are). Also the time an instance takes to load a
# revocation log of 100 000 revoked sessions from PostgreSQL at start (what replaces Redis's
# revocation state after Redis is lost).
#
# Pinning: the Tessera server (and pgbench / mariadb-slap, in its place) on CPU 0; the load
# generator, PostgreSQL, MariaDB and a private Redis on CPU 1. Uses the local PostgreSQL
# (database `test`, schema tessera_bench) and MariaDB (database tessera_bench), both dropped at
# the end. Loopback only; every loop is bounded in time.
#
#   scripts/bench-durable.sh            # RUNS=3 DURATION=5s STORES="postgres mysql tiered"
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
CONC=${CONC:-16}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
MY_ARGS=(-h 127.0.0.1 -P 3306 -uroot)
cargo build --release -q -p tessera-cli -p tessera-bench
BIN=$PWD/target/release/tessera
BENCH=$PWD/target/release/tessera-bench
WORK=$(mktemp -d)
REDIS_PORT=${REDIS_PORT:-16391}

pin() { # cpu list, pids...
  local cpus=$1; shift
  for p in "$@"; do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true; done
}
db_pids() { pgrep -x postgres || true; pgrep -x mariadbd || true; }

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  psql "$PG" -qc "drop schema if exists tessera_bench cascade" >/dev/null 2>&1 || true
  mariadb "${MY_ARGS[@]}" -e "drop database if exists tessera_bench" >/dev/null 2>&1 || true
  # shellcheck disable=SC2046
  pin 0-1 $(db_pids)
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck disable=SC2046
pin 1 $(db_pids)
taskset -c 1 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --dir "$WORK" --daemonize yes --logfile "$WORK/redis.log" >/dev/null
sleep 0.5
export TESSERA_ADMIN_API_KEY
TESSERA_ADMIN_API_KEY=$(head -c 32 /dev/urandom | base64)

fresh_databases() {
  psql "$PG" -qc "drop schema if exists tessera_bench cascade; create schema tessera_bench" >/dev/null
  mariadb "${MY_ARGS[@]}" -e "drop database if exists tessera_bench; create database tessera_bench"
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
}

PG_URL="$PG?options[search_path]=tessera_bench"
MY_URL="mysql://root@127.0.0.1:3306/tessera_bench"

start_server() { # name, env...
  local name=$1 dir="$WORK/$1"; shift
  mkdir -p "$dir"
  (cd "$dir" && exec taskset -c 0 env TESSERA_LISTEN=127.0.0.1:18182 TESSERA_LOG_LEVEL=warn \
    TESSERA_REFRESH_RATE_LIMIT=0 \
    TESSERA_DATA_DIR="$dir/data" TESSERA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" "$@" \
    "$BIN" serve >"$dir/log" 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    curl -sf http://127.0.0.1:18182/readyz >/dev/null && return
    sleep 0.02
  done
  echo "server did not start"; cat "$dir/log"; exit 1
}

stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
}

SERVER_URL=http://127.0.0.1:18182
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh

secs=${DURATION%s}

pg_ceiling() {
  psql "$PG" -qc "create table tessera_bench.cas (id int primary key, g bigint not null);
    insert into tessera_bench.cas select i, 0 from generate_series(1, 10000) i" >/dev/null
  printf '\\set id random(1, 10000)\nupdate tessera_bench.cas set g = g + 1 where id = :id and g >= 0;\n' >"$WORK/cas.sql"
  for _ in $(seq 1 "$RUNS"); do
    taskset -c 0 pgbench -n -c "$CONC" -j 1 -T "$secs" -f "$WORK/cas.sql" "$PG" 2>/dev/null \
      | grep -E '^tps' | sed 's/^/pgbench one-row UPDATE, /'
  done
}

mysql_ceiling() {
  mariadb "${MY_ARGS[@]}" tessera_bench -e "create table cas (id int primary key, g bigint not null) engine=InnoDB;
    insert into cas select seq, 0 from seq_1_to_10000"
  local n=$((CONC * 2000))
  for _ in $(seq 1 "$RUNS"); do
    local t
    t=$(taskset -c 0 mariadb-slap "${MY_ARGS[@]}" --create-schema=tessera_bench --concurrency="$CONC" \
      --iterations=1 --number-of-queries="$n" \
      --query="update cas set g = g + 1 where id = 1 + (connection_id() % 10000)" 2>/dev/null \
      | awk '/Average number of seconds/ {print $(NF-1)}')
    python3 -c "print(f'mariadb-slap one-row UPDATE: {$n / $t:.0f}/s')"
  done
}

POOL=${POOL:-400}
for store in ${STORES:-postgres mysql tiered}; do
  fresh_databases
  case $store in
    postgres) start_server "$store" TESSERA_DATABASE_URL="$PG_URL" ;;
    mysql) start_server "$store" TESSERA_DATABASE_URL="$MY_URL" ;;
    tiered) start_server "$store" TESSERA_DATABASE_URL="$PG_URL" TESSERA_SESSION_STORE=tiered ;;
  esac
  echo "## store: $store   (mode, median ops/s, range, p50 ms, p99 ms, non-2xx)"
  for mode in empty refresh logout; do run "$mode"; done
  stop_server
  case $store in
    postgres) echo "## ceiling (same database)"; pg_ceiling ;;
    mysql) echo "## ceiling (same database)"; mysql_ceiling ;;
  esac
done

echo "## loading the revocation state from PostgreSQL at start (tiered), median of $RUNS"
startup() { # label
  local times=()
  for _ in $(seq 1 "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    start_server startup TESSERA_DATABASE_URL="$PG_URL" TESSERA_SESSION_STORE=tiered
    t1=$(date +%s.%N)
    stop_server
    times+=("$(python3 -c "print(f'{($t1 - $t0) * 1000:.0f}')")")
  done
  printf '%s: start to ready %s ms (runs: %s)\n' "$1" \
    "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")" "${times[*]}"
}
fresh_databases
start_server migrate TESSERA_DATABASE_URL="$PG_URL"; stop_server
startup "empty revocation log"
now_ms=$(( $(date +%s) * 1000 ))
psql "$PG" -qc "set search_path = tessera_bench;
  insert into revocations (seq, kind, subject, at, until)
    select i, 'revoked_session', substr(md5(i::text), 1, 21) || 'A', $now_ms, $now_ms + 3600000
    from generate_series(1, 100000) i;
  update revocation_head set seq = 100000 where id = 1;" >/dev/null
startup "100 000 revoked sessions in the log"
