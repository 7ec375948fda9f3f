#!/usr/bin/env bash
# Load script: key creations per second through the HTTP API, beside a baseline endpoint
# that only answers (/healthz), in the same session. Bounded: each run lasts DURATION
# seconds on 127.0.0.1 only.
#
#   benches/load.sh [DATABASE]     DATABASE: a SQLite path (default: a temp file) or postgres:// URL
#
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
# A throwaway master key: no key file is left in the working directory.
export KEYWARD_MASTER_KEY="${KEYWARD_MASTER_KEY:-$(head -c 32 /dev/urandom | base64)}"
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
TARGET="${CARGO_TARGET_DIR:-target}/release/keyward"
WORK="$(mktemp -d)"
DATABASE="${1:-$WORK/bench.db}"
PORT="${PORT:-18089}"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -x "$TARGET" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }

INIT="$("$TARGET" --database "$DATABASE" init --org-name bench --json)"
ADMIN_KEY="$(echo "$INIT" | sed 's/.*"api_key":"\([^"]*\)".*/\1/')"
export ADMIN_KEY
# The bench drives the management API through one organization: lift its ceiling.
printf '[rate_limits]\nmanagement_per_second = 1000000\nmanagement_burst = 1000000\n' >"$WORK/bench.toml"
KEYWARD_LOG=warn "$TARGET" --config "$WORK/bench.toml" --database "$DATABASE" serve --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# The bench drives everything through the bootstrap key: lift its own rate limit.
curl -sf -X PATCH "http://127.0.0.1:$PORT/v1/keys/$(echo "$INIT" | sed 's/.*"key_id":"\([^"]*\)".*/\1/')" \
  -H "X-Api-Key: $ADMIN_KEY" -H 'Content-Type: application/json' -d '{"rate_limit_override": 1000000}' >/dev/null

echo "== baseline: GET /healthz ($CONNECTIONS connections, ${DURATION}s)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/healthz"
echo "== POST /v1/keys ($CONNECTIONS connections, ${DURATION}s)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/create_keys.lua "http://127.0.0.1:$PORT/v1/keys"
