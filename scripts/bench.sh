#!/usr/bin/env bash
# Measures Tessera's whole token flows on this machine and prints the rows for BENCHMARKS.md.
# Server pinned to CPU 0; the load generator and a private Redis pinned to CPU 1. Each figure is
# run RUNS times; the ceilings (empty route of the same server, the raw store primitive) are
# measured in the same run. Loopback only; every loop is bounded in time.
#
#   scripts/bench.sh            # RUNS=3 DURATION=5s MODES="empty verify verify-fresh refresh logout login"
#   BIN=/tmp/old/tessera scripts/bench.sh   # another build, e.g. to compare two versions
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
CONC=${CONC:-16}
# BIN (and BENCH) name other builds to compare, e.g. an older release, in the same run.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p tessera-cli -p tessera-bench
fi
BIN=$(realpath "${BIN:-target/release/tessera}")
BENCH=${BENCH:-target/release/tessera-bench}
WORK=$(mktemp -d)
REDIS_PORT=${REDIS_PORT:-16390}
cleanup() {
  pkill -f "tessera-bench-server-$$" 2>/dev/null || true
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

taskset -c 1 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --dir "$WORK" --daemonize yes --logfile "$WORK/redis.log" >/dev/null
sleep 0.5
export TESSERA_ADMIN_API_KEY
TESSERA_ADMIN_API_KEY=$(head -c 32 /dev/urandom | base64)

start_server() { # store
  local store=$1 dir="$WORK/$1"
  mkdir -p "$dir"
  (cd "$dir" && exec -a "tessera-bench-server-$$" taskset -c 0 env \
    TESSERA_LISTEN=127.0.0.1:18181 TESSERA_LOG_LEVEL=warn TESSERA_SESSION_STORE="$store" \
    TESSERA_REFRESH_RATE_LIMIT=0 \
    TESSERA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" TESSERA_DATA_DIR="$dir/data" \
    "$BIN" serve >"$dir/log" 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18181/readyz >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$dir/log"; exit 1
}

SERVER_URL=http://127.0.0.1:18181
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh

for store in ${STORES:-sql redis}; do
  start_server "$store"
  # Sessions per virtual user made before a logout run: enough for the run at this store's rate.
  case $store in redis) POOL=${POOL_REDIS:-4000} ;; *) POOL=${POOL_SQL:-400} ;; esac
  echo "## store: $store   (mode, median ops/s, range, p50 ms, p99 ms, non-2xx)"
  for mode in ${MODES:-empty verify verify-fresh refresh logout login}; do run "$mode"; done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  if [ "$store" = redis ]; then
    key=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'tessera:s:*' | head -n 1 || true)
    echo "redis MEMORY USAGE of one session: $(redis-cli -p "$REDIS_PORT" MEMORY USAGE "$key") bytes"
  fi
done

echo "## ceilings: raw store primitives"
CAS="local g = redis.call('HGET', KEYS[1], 'g') if g ~= ARGV[1] then return 0 end redis.call('HSET', KEYS[1], 'g', ARGV[1]) return 1"
SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$CAS")
redis-cli -p "$REDIS_PORT" HSET bench:cas g 1 >/dev/null
for _ in $(seq 1 "$RUNS"); do
  taskset -c 1 redis-benchmark -p "$REDIS_PORT" -c "$CONC" -n 200000 -q EVALSHA "$SHA" 1 bench:cas 1 | tr '\r' '\n' | tail -n 1
done
python3 - "$WORK" "$RUNS" <<'PY'
import sqlite3, sys, time
work, runs = sys.argv[1], int(sys.argv[2])
for sync in ("FULL", "NORMAL"):
    rates = []
    for run in range(runs):
        db = sqlite3.connect(f"{work}/raw-{sync}-{run}.db", isolation_level=None)
        db.execute("pragma journal_mode=wal"); db.execute(f"pragma synchronous={sync}")
        db.execute("create table s (id text primary key, g integer)"); db.execute("insert into s values ('x', 0)")
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3:
            db.execute("update s set g = g + 1 where id = 'x' and g = ?", (n,)); n += 1
        rates.append(n / (time.perf_counter() - start))
    print(f"sqlite one-row compare-and-set UPDATE, WAL, synchronous={sync}: {sorted(rates)[len(rates)//2]:.0f}/s (range {min(rates):.0f}-{max(rates):.0f})")
PY
