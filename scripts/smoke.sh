#!/usr/bin/env bash
# A few seconds of every load-generator flow against a freshly started Tessera (debug build,
# embedded store, cheap argon2), failing on any non-2xx answer. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# The features of the test build (`cargo test --workspace --all-features`), so the binaries reuse
# its compiled dependencies.
cargo build -q --workspace --all-features --bins
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TESSERA_ADMIN_API_KEY
TESSERA_ADMIN_API_KEY=$(head -c 32 /dev/urandom | base64)
TESSERA_LISTEN=127.0.0.1:$PORT TESSERA_DATA_DIR=$WORK/data TESSERA_LOG_LEVEL=warn \
  TESSERA_ARGON2_MEMORY_KIB=1024 TESSERA_ARGON2_ITERATIONS=1 TESSERA_REFRESH_RATE_LIMIT=0 \
  target/debug/tessera serve >"$WORK/log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
for mode in refresh verify verify-fresh logout mixed; do
  target/debug/tessera-bench --url "http://127.0.0.1:$PORT" --mode "$mode" --concurrency 4 \
    --duration 2s --warmup 0s --fail-on-error
done
# logout with sessions minted before the run (the pool path of the load generator)
target/debug/tessera-bench --url "http://127.0.0.1:$PORT" --mode logout --pool 25 --concurrency 4 \
  --duration 2s --warmup 0s --fail-on-error
kill -TERM $SERVER
wait $SERVER
echo "smoke: every flow answered 2xx; the server stopped cleanly"
