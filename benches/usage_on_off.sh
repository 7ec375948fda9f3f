#!/usr/bin/env bash
# Rate limiting and usage accounting, on against off (issue #6).
#
# "On" is a release build of the checkout. "Off" is the same commit built in a worktree with
# one change: every valid check takes the path introspection takes, which neither limits
# nor counts (the `Purpose::Inspection` arm of `Verifier::conclude` takes every purpose),
# so no GCRA, no usage counts, no RateLimit headers. Nothing of it is committed.
#
# 1. Instructions, counted by callgrind (this machine's noise does not move them):
#    - in process: `Verifier::check` of a cached key with and without the limiter and the
#      counting (the divan benchmark's two functions), from runs at two sample sizes;
#    - over HTTP: each server answering GET /v1/authorize, N1 and then N2 requests on one
#      keep-alive connection, round-robin over KEYS keys (N1 = KEYS: each key's first use,
#      a cache fill, is in both runs); the instructions of the connection's task
#      (HTTP parsing, middleware, the handler, writing the answer), their difference
#      divided by N2 - N1, are one request. Startup (key generation) and background tasks
#      are left out: the usage flush, once a second, writes one row per credential, minute
#      and outcome, whatever the request rate.
# 2. Requests per second under wrk (64 connections, 5 s), round-robin over the same keys,
#    on and off alternating, ROUNDS times each: noisy on this machine, reported beside the
#    instruction counts.
#
# Each key has a limit of 500 requests a second (burst 1,000): as a deployment sized for
# its traffic, every request passes its limit and is counted.
#
#   benches/usage_on_off.sh         (needs valgrind, wrk, curl; builds both binaries)
#   BUILD=0 IN_PROCESS=0 benches/usage_on_off.sh    (the HTTP part again, same binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ON_TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OFF_TARGET="${OFF_TARGET_DIR:-/var/tmp/keyward-target-off}"
OFF_TREE="${OFF_TREE:-/var/tmp/keyward-off-tree}"
PORT="${PORT:-18097}"
KEYS="${KEYS:-200}"
N1="$KEYS"
N2="${N2:-1200}"
S1="${S1:-200}"
S2="${S2:-2200}"
ROUNDS="${ROUNDS:-4}"
. benches/common.sh

ON="$ON_TARGET/release/keyward"
OFF="$OFF_TARGET/release/keyward"
if [ "${BUILD:-1}" = 1 ]; then
echo "== building on ($(git rev-parse --short HEAD)) and off (the same, uncounted)"
cargo build --release -q
cargo bench -p keyward-engine --bench verification --no-run -q 2>/dev/null
git worktree remove --force "$OFF_TREE" 2>/dev/null || true
git worktree add --detach -q "$OFF_TREE" HEAD
sed -i 's/^                Purpose::Inspection => None,$/                _ => None,/' \
  "$OFF_TREE/crates/keyward-engine/src/verifier.rs"
grep -q '^                _ => None,$' "$OFF_TREE/crates/keyward-engine/src/verifier.rs"
# The off build starts from a copy of the on build's dependencies: only the workspace's
# own crates are compiled again.
if [ ! -d "$OFF_TARGET/release" ]; then
  mkdir -p "$OFF_TARGET"
  cp -a "$ON_TARGET/release" "$OFF_TARGET/"
fi
(cd "$OFF_TREE" && CARGO_TARGET_DIR="$OFF_TARGET" cargo build --release -q 2>/dev/null)
git worktree remove --force "$OFF_TREE"
fi
BENCH="$(ls -t "$ON_TARGET"/release/deps/verification-* | grep -v '\.d$' | head -1)"

run_check() { inclusive "$1" 'verification::run ['; }

if [ "${IN_PROCESS:-1}" = 1 ]; then
echo "== in process: Verifier::check of a cached key, 1,000 credentials"
for bench in check_a_cached_key check_a_cached_key_uncounted; do
  for size in "$S1" "$S2"; do
    KEYWARD_BENCH_CREDENTIALS=1000 valgrind --tool=callgrind --callgrind-out-file="$WORK/$bench.$size" \
      "$BENCH" --bench --exact "verification::$bench" --sample-count 1 --sample-size "$size" >/dev/null 2>&1
  done
  small="$(run_check "$WORK/$bench.$S1")"
  large="$(run_check "$WORK/$bench.$S2")"
  [[ $small =~ ^[0-9]+$ && $large =~ ^[0-9]+$ ]] || { echo "$bench: no count in callgrind's output" >&2; exit 1; }
  per=$(((large - small) / (S2 - S1)))
  echo "$bench: $per instructions per check"
  eval "check_$bench=$per"
done
echo "in process, on/off by instructions: $(python3 -c "print(round($check_check_a_cached_key_uncounted / $check_check_a_cached_key, 3))")"
fi

bench_init "$ON" "$WORK/b.db"
bench_serve "$ON" "$WORK/b.db"
export KEYS_FILE="$WORK/keys.txt"
for i in $(seq "$KEYS"); do
  create_key "{\"name\": \"k$i\", \"rate_limit_override\": 500}"
done >"$KEYS_FILE"
bench_stop

echo "== over HTTP: GET /v1/authorize, instructions per request"
instructions_per_request "$ON" "$WORK/b.db" authorize "$KEYS_FILE" 200
http_on="$PER"
echo "on: $http_on instructions per request"
instructions_per_request "$OFF" "$WORK/b.db" authorize "$KEYS_FILE" 200
http_off="$PER"
echo "off: $http_off instructions per request"
echo "over HTTP, on/off by instructions: $(python3 -c "print(round($http_off / $http_on, 4))")"

echo "== over HTTP: requests per second, wrk -t2 -c64 -d5s, alternating"
for round in $(seq "$ROUNDS"); do
  for build in on off; do
    binary="$ON"; [ "$build" = off ] && binary="$OFF"
    bench_serve "$binary" "$WORK/b.db"
    checked_wrk 2xx -t2 -c64 -d5s -s benches/authorize.lua "http://127.0.0.1:$PORT/v1/authorize" >/dev/null
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
    bench_stop
    echo "round $round $build: $rps requests/s"
  done
done
