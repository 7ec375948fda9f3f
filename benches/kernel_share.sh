#!/usr/bin/env bash
# Where the server's time per request goes, user space against the kernel, for /healthz,
# /v1/authorize and /v1/keys/verify under wrk (2 threads, 64 connections, 5 s): `perf
# record` samples every thread of the server on the cpu-clock event (each sample's period
# is nanoseconds of CPU) from just before wrk starts until it ends, and each side's time is
# divided by the requests wrk counted. The kernel's scheduling entries are printed too: on
# two cores shared with wrk, context switches (finish_task_switch) and the wake-ups of
# wrk's threads (_raw_spin_unlock_irqrestore). perf's own sampling (at 2 kHz, no call graphs)
# adds to what it measures, so the totals run above cpu_per_request.sh's; read the split.
#
#   KEYS=200 benches/kernel_share.sh      (needs a release build, wrk, perf, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${KEYS:-200}"
PORT="${PORT:-18097}"
. benches/common.sh
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }
bench_init "$TARGET" "$WORK/b.db"
bench_serve "$TARGET" "$WORK/b.db"
bench_keys "$KEYS"
for target in "healthz benches/authorize.lua /healthz" "authorize benches/authorize.lua /v1/authorize" "verify benches/verify.lua /v1/keys/verify"; do
  set -- $target
  perf record -e cpu-clock -F 2000 -p "$SERVER" -o "$WORK/perf.data" >"$WORK/perf.log" 2>&1 &
  recorder=$!
  sleep 0.5
  kill -0 "$recorder" 2>/dev/null || { echo "perf could not record:" >&2; cat "$WORK/perf.log" >&2; exit 1; }
  wrk -t2 -c64 -d5s -s "$2" "http://127.0.0.1:$PORT$3" >"$WORK/wrk.out"
  kill -INT "$recorder"
  wait "$recorder" || true
  wrk_answered 2xx
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  perf report -i "$WORK/perf.data" --no-children --sort sym -g none -F period,sym 2>/dev/null \
    | awk -v name="$1" -v requests="$requests" '
      $2 == "[k]" { kernel += $1; if (index($3, "finish_task_switch") == 1) switches += $1; if ($3 == "_raw_spin_unlock_irqrestore") wakes += $1 }
      $2 == "[.]" { user += $1 }
      END {
        per = 1e-3 / requests   # ns of CPU in all → µs per request
        printf "%s: %d requests; per request: user %.1f µs, kernel %.1f µs (finish_task_switch %.1f, _raw_spin_unlock_irqrestore %.1f)\n",
          name, requests, user * per, kernel * per, switches * per, wakes * per
      }'
done
