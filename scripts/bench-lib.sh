#!/usr/bin/env bash
# What the benchmark scripts share (sourced, not run).

# Runs the load generator RUNS times in one mode against SERVER_URL (pinned to CPU 1) and prints
# one row: mode, median ops/s, range, median p50 ms, median p99 ms, non-2xx answers.
# Needs BENCH, SERVER_URL, RUNS, CONC, DURATION; POOL (sessions per virtual user made before a
# logout run) is optional.
run() { # mode
  local out=() extra=()
  # logout: sessions made before the run (POOL per virtual user), so the logout alone is measured.
  [ "$1" = logout ] && extra=(--pool "${POOL:-2000}")
  for _ in $(seq 1 "$RUNS"); do
    out+=("$(taskset -c 1 "$BENCH" --url "$SERVER_URL" --mode "$1" --concurrency "$CONC" \
      --duration "$DURATION" --warmup 1s --json "${extra[@]}")")
  done
  printf '%s\n' "${out[@]}" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
ops = [r["ops_per_sec"] for r in rows]; p99 = [r["p99_ms"] for r in rows]; p50 = [r["p50_ms"] for r in rows]
bad = sum(n for r in rows for s, n in r["statuses"].items() if not s.startswith("2")) + sum(r["transport_errors"] for r in rows)
made = sum(r.get("sessions_made_in_run", 0) for r in rows)
if made: print(f"warning: {made} logouts made their session during the run (raise POOL)", file=sys.stderr)
m = rows[0]["mode"]
print(f"{m}\t{sorted(ops)[len(ops)//2]:.0f}\t{min(ops):.0f}-{max(ops):.0f}\t{sorted(p50)[len(p50)//2]:.2f}\t{sorted(p99)[len(p99)//2]:.2f}\t{bad}")'
}
