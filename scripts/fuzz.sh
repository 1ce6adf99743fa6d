#!/usr/bin/env bash
# Runs each cargo fuzz target for FUZZ_SECONDS (default 20) from the corpus in fuzz/corpus
# (read-only: new inputs go to a temporary directory). Any crash, panic or input slower than
# 1 s fails the run. `-s none`: no sanitizer, so it works on the stable toolchain.
#   FUZZ_SECONDS=600 scripts/fuzz.sh            # a longer run on demand
#   FUZZ_TARGETS="access_token" scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-20}"
targets="${FUZZ_TARGETS:-access_token refresh_token signed_claims request_body}"
cargo fuzz build -s none 2>&1 | tail -1
for target in $targets; do
  fresh="$(mktemp -d)"
  log="$fresh.log"
  echo "fuzzing $target for ${seconds}s"
  status=0
  cargo fuzz run -s none "$target" "$fresh" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=1 -rss_limit_mb=1024 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|new_units_added)|ERROR|panicked" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz target $target failed (exit $status)"
    rm -rf "$fresh" "$log"
    exit 1
  fi
  rm -rf "$fresh" "$log"
done
