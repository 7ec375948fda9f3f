#!/usr/bin/env bash
# OAuth throughput: token issuance (POST /v1/auth/token, client_secret_basic) and bearer
# checks of cached access tokens at GET /v1/authorize, beside API-key checks at the same
# endpoint and GET /healthz (an endpoint that only answers), all with wrk on 127.0.0.1 in
# one session. Bounded: each run lasts DURATION seconds.
#
#   benches/oauth.sh
#
# Needs: a release build (cargo build --release), wrk, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
COUNT="${COUNT:-100}"
PORT="${PORT:-18092}"
TARGET="${CARGO_TARGET_DIR:-target}/release/keyward"
WORK="$(mktemp -d)"
DB="$WORK/bench.db"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export KEYWARD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"

INIT="$("$TARGET" --database "$DB" init --org-name bench --json)"
# One JSON string field of a one-line answer, on a line of its own.
field() { sed "s/.*\"$1\":\"\([^\"]*\)\".*/\1/"; echo; }
ADMIN="$(echo "$INIT" | field api_key)"
export CLIENT_ID="$(echo "$INIT" | field client_id)" CLIENT_SECRET="$(echo "$INIT" | field client_secret)"
# The bench drives the management API through one organization: lift its ceiling.
printf '[rate_limits]\nmanagement_per_second = 1000000\nmanagement_burst = 1000000\n' >"$WORK/bench.toml"
KEYWARD_LOG=warn "$TARGET" --config "$WORK/bench.toml" --database "$DB" serve --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# The bench drives everything through the bootstrap key: lift its own rate limit.
curl -sf -X PATCH "http://127.0.0.1:$PORT/v1/keys/$(echo "$INIT" | sed 's/.*"key_id":"\([^"]*\)".*/\1/')" \
  -H "X-Api-Key: $ADMIN" -H 'Content-Type: application/json' -d '{"rate_limit_override": 1000000}' >/dev/null

export KEYS_FILE="$WORK/keys.txt" TOKENS_FILE="$WORK/tokens.txt"
: >"$KEYS_FILE"; : >"$TOKENS_FILE"
for i in $(seq "$COUNT"); do
  curl -sf "http://127.0.0.1:$PORT/v1/keys" -H "X-Api-Key: $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench $i\",\"permissions\":[\"dns:read\"]}" | field key >>"$KEYS_FILE"
  curl -sf "http://127.0.0.1:$PORT/v1/auth/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
    -d grant_type=client_credentials -d scope=dns:read | field access_token >>"$TOKENS_FILE"
done

run() {
  echo "== $1"
  shift
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" | grep -E "Requests/sec|Latency |99%|Non-2xx|Socket errors"
}
run "baseline: GET /healthz" -s benches/authorize.lua "http://127.0.0.1:$PORT/healthz"
run "POST /v1/auth/token (client_secret_basic)" -s benches/token.lua "http://127.0.0.1:$PORT/v1/auth/token"
run "GET /v1/authorize, API keys" -s benches/authorize.lua "http://127.0.0.1:$PORT/v1/authorize"
run "GET /v1/authorize, cached access tokens" -s benches/bearer.lua "http://127.0.0.1:$PORT/v1/authorize"
