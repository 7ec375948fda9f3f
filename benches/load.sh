#!/usr/bin/env bash
# Load script: key creations per second through the HTTP API, beside a baseline endpoint
# that only answers (/healthz), in the same session. Bounded: each run lasts DURATION
# seconds on 127.0.0.1 only.
#
#   benches/load.sh [DATABASE]     DATABASE: a SQLite path (default: a temp file) or postgres:// URL
#
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18089}"
. benches/common.sh
DATABASE="${1:-$WORK/bench.db}"

[ -x "$TARGET" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }

bench_init "$TARGET" "$DATABASE"
export ADMIN_KEY="$ADMIN"
bench_serve "$TARGET" "$DATABASE"

# Through checked_wrk: a run with a socket error or any answer but 2xx fails the script.
echo "== baseline: GET /healthz ($CONNECTIONS connections, ${DURATION}s)"
checked_wrk 2xx -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/healthz"
echo "== POST /v1/keys ($CONNECTIONS connections, ${DURATION}s)"
checked_wrk 2xx -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s benches/create_keys.lua \
  "http://127.0.0.1:$PORT/v1/keys"
