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
. benches/common.sh
DB="$WORK/bench.db"

bench_init "$TARGET" "$DB"
export CLIENT_ID="$(echo "$INIT" | field client_id)" CLIENT_SECRET="$(echo "$INIT" | field client_secret)"
bench_serve "$TARGET" "$DB"

export KEYS_FILE="$WORK/keys.txt" TOKENS_FILE="$WORK/tokens.txt"
: >"$KEYS_FILE"; : >"$TOKENS_FILE"
# Each key may make 5,000 requests a second (burst 10,000), so no run meets a rate limit (a
# refused check is a different, cheaper answer); the tokens are the bootstrap credential's,
# whose limit is the deployment default that bench_init lifts.
for i in $(seq "$COUNT"); do
  create_key "{\"name\":\"bench $i\",\"permissions\":[\"dns:read\"],\"rate_limit_override\":5000}" >>"$KEYS_FILE"
  curl -sf "http://127.0.0.1:$PORT/v1/auth/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
    -d grant_type=client_credentials -d scope=dns:read | field access_token >>"$TOKENS_FILE"
done

run() {
  echo "== $1"
  shift
  checked_wrk 2xx -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@"
}
run "baseline: GET /healthz" -s benches/authorize.lua "http://127.0.0.1:$PORT/healthz"
run "POST /v1/auth/token (client_secret_basic)" -s benches/token.lua "http://127.0.0.1:$PORT/v1/auth/token"
run "GET /v1/authorize, API keys" -s benches/authorize.lua "http://127.0.0.1:$PORT/v1/authorize"
run "GET /v1/authorize, cached access tokens" -s benches/bearer.lua "http://127.0.0.1:$PORT/v1/authorize"
