#!/usr/bin/env bash
# Two or more builds of keyward against each other, alternating: each round starts each
# binary in turn on the same database and runs wrk (2 threads, 64 connections, DURATION
# seconds after a 1 s warm-up) against /healthz, /v1/authorize and /v1/keys/verify; then
# each binary's medians over the rounds, and the ratio of each median to the same binary's
# /healthz median (for verify too: verify.sh's 405 baseline and its medians of per-round
# ratios are the measure of issue #4; this script is for telling builds apart). Alternating
# within rounds is what makes builds comparable on this machine, whose throughput moves by
# ±20 % from one minute to the next.
#
#   cp target/release/keyward /tmp/before   # … change, build …
#   ROUNDS=6 benches/compare.sh /tmp/before target/release/keyward
#
# A binary may be a script that execs one with other settings (an environment variable,
# say). Needs wrk and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -ge 2 ] || { echo "usage: benches/compare.sh BINARY BINARY…" >&2; exit 1; }
ROUNDS="${ROUNDS:-4}"
DURATION="${DURATION:-3}"
KEYS="${KEYS:-200}"
PORT="${PORT:-18099}"
. benches/common.sh
DB="$WORK/bench.db"
bench_init "$1" "$DB"
bench_serve "$1" "$DB"
bench_keys "$KEYS"
bench_stop
: >"$WORK/results"
for round in $(seq "$ROUNDS"); do
  for binary in "$@"; do
    bench_serve "$binary" "$DB"
    for endpoint in healthz authorize verify; do
      case "$endpoint" in
        healthz) args=(-s benches/authorize.lua "http://127.0.0.1:$PORT/healthz") ;;
        authorize) args=(-s benches/authorize.lua "http://127.0.0.1:$PORT/v1/authorize") ;;
        verify) args=(-s benches/verify.lua "http://127.0.0.1:$PORT/v1/keys/verify") ;;
      esac
      wrk -t2 -c64 -d1s "${args[@]}" >/dev/null
      checked_wrk 2xx -t2 -c64 -d"${DURATION}s" "${args[@]}" >/dev/null
      echo "$round $binary $endpoint $(wrk_result)" | tee -a "$WORK/results"
    done
    bench_stop
  done
done
python3 - "$WORK/results" "$@" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, binary, endpoint, rps, p99 = line.split()
    runs.setdefault((binary, endpoint), []).append((float(rps), float(p99)))
for binary in sys.argv[2:]:
    med = {e: statistics.median(r for r, _ in runs[(binary, e)]) for e in ("healthz", "authorize", "verify")}
    p99 = {e: statistics.median(p for _, p in runs[(binary, e)]) for e in med}
    print(f"{binary}: " + "  ".join(
        f"{e} {med[e]:,.0f}/s ({med[e] / med['healthz']:.3f}, p99 {p99[e]:.2f} ms)" for e in med))
PY
