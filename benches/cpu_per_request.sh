#!/usr/bin/env bash
# Server CPU time per request (user + system, from /proc) for /healthz, /v1/authorize and
# /v1/keys/verify under wrk (2 threads, 64 connections, 5 s each), round-robin over KEYS
# keys. Unlike requests per second, this does not depend on how the two cores are shared
# with wrk. Beside it, the context switches of the server's threads per request: voluntary
# (a thread found no work and slept) and involuntary (it was preempted, mostly by the wrk
# thread its answer woke), which is where the kernel's share of a request grows. Threads
# that end during a run take their counts with them: the rates are, if anything, low.
#
#   KEYS=1000 benches/cpu_per_request.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${KEYS:-1000}"
PORT="${PORT:-18096}"
. benches/common.sh
bench_init "$TARGET" "$WORK/b.db"
bench_serve "$TARGET" "$WORK/b.db"
bench_keys "$KEYS"
cpu() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
# The server's threads' context switches, voluntary and involuntary.
switches() { cat "/proc/$SERVER"/task/*/status | awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v, n}'; }
for target in "healthz benches/authorize.lua /healthz" "authorize benches/authorize.lua /v1/authorize" "verify benches/verify.lua /v1/keys/verify"; do
  set -- $target
  c0=$(cpu)
  read -r v0 i0 < <(switches)
  checked_wrk 2xx -t2 -c64 -d5s -s "$2" "http://127.0.0.1:$PORT$3" >/dev/null
  n=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  c1=$(cpu)
  read -r v1 i1 < <(switches)
  echo "$1: $n requests, $(python3 -c "print(round(($c1 - $c0) * 1e6 / 100 / $n, 1))") µs of server CPU per request," \
    "context switches per request: $(python3 -c "print(f'{($v1 - $v0) / $n:.3f} voluntary, {($i1 - $i0) / $n:.3f} involuntary')")"
done
