#!/usr/bin/env bash
# Where the server's time per request goes, user space against the kernel, for /healthz,
# /v1/authorize and /v1/keys/verify under wrk (2 threads, 64 connections): `perf record`
# samples every thread of the server at 2 kHz for 4 s of each run, and each side's samples
# are divided by the requests answered meanwhile. The kernel's two largest entries are
# printed too: on two cores shared with wrk they are the context switches
# (finish_task_switch) and the wake-ups of wrk's threads (_raw_spin_unlock_irqrestore).
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
lift_admin_limit
bench_keys "$KEYS"
for target in "healthz benches/authorize.lua /healthz" "authorize benches/authorize.lua /v1/authorize" "verify benches/verify.lua /v1/keys/verify"; do
  set -- $target
  wrk -t2 -c64 -d6s -s "$2" "http://127.0.0.1:$PORT$3" >"$WORK/wrk.out" &
  load=$!
  sleep 1
  perf record -q -F 2000 -g -p "$SERVER" -o "$WORK/perf.data" -- sleep 4 >/dev/null 2>&1
  wait "$load"
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  perf report -i "$WORK/perf.data" --no-children --sort sym -g none -F sample,sym 2>/dev/null \
    | awk -v name="$1" -v rps="$rps" '
      $2 == "[k]" { kernel += $1; k[$3] += $1 }
      $2 == "[.]" { user += $1 }
      END {
        per = 1e6 / 2000 / (rps * 4)   # µs of one sample, spread over the requests of 4 s
        printf "%s: %.0f req/s; per request: user %.1f µs, kernel %.1f µs (finish_task_switch %.1f, _raw_spin_unlock_irqrestore %.1f)\n",
          name, rps, user * per, kernel * per, k["finish_task_switch.isra.0"] * per, k["_raw_spin_unlock_irqrestore"] * per
      }'
done
