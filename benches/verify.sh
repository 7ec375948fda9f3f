#!/usr/bin/env bash
# Verification throughput: GET /healthz (an endpoint that only answers, the baseline),
# POST /v1/keys/verify and GET /v1/authorize, all with wrk on 127.0.0.1, beside nginx
# answering from a static `map` of the same keys. Round-robin over KEYS distinct API keys;
# FILL filler credentials are stored first so the index has that size.
#
#   FILL=1000000 benches/verify.sh
#   PIN=1 FILL=1000 benches/verify.sh     # servers on core 0, wrk (one thread) on core 1
#
# Needs: a release build, wrk, sqlite3, nginx (apt-get install wrk sqlite3 nginx).
set -euo pipefail
# A throwaway master key: no key file is left in the working directory.
export KEYWARD_MASTER_KEY="${KEYWARD_MASTER_KEY:-$(head -c 32 /dev/urandom | base64)}"
cd "$(dirname "$0")/.."

FILL="${FILL:-1000}"
KEYS="${KEYS:-1000}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
# PIN=1: the servers (Keyward and nginx) run on core 0 and wrk on core 1, so neither waits
# for the other's time slice and the latency is the server's own.
SERVER_CPU=""
LOAD_CPU=""
if [ "${PIN:-0}" = 1 ]; then
  SERVER_CPU="taskset -c 0"
  LOAD_CPU="taskset -c 1"
  THREADS=1
fi
PORT="${PORT:-18090}"
NGINX_PORT="${NGINX_PORT:-18091}"
TARGET="${CARGO_TARGET_DIR:-target}/release/keyward"
WORK="$(mktemp -d)"
DB="$WORK/bench.db"
cleanup() { kill "$SERVER" 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

INIT="$("$TARGET" --database "$DB" init --org-name bench --json)"
ADMIN="$(echo "$INIT" | sed 's/.*"api_key":"\([^"]*\)".*/\1/')"
sqlite3 "$DB" -cmd ".parameter set :count $FILL" < benches/fill.sql
# The bench drives the management API through one organization: lift its ceiling.
printf '[rate_limits]\nmanagement_per_second = 1000000\nmanagement_burst = 1000000\n' >"$WORK/bench.toml"
KEYWARD_LOG=warn $SERVER_CPU "$TARGET" --config "$WORK/bench.toml" --database "$DB" serve --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# The bench drives everything through the bootstrap key: lift its own rate limit.
curl -sf -X PATCH "http://127.0.0.1:$PORT/v1/keys/$(echo "$INIT" | sed 's/.*"key_id":"\([^"]*\)".*/\1/')" \
  -H "X-Api-Key: $ADMIN" -H 'Content-Type: application/json' -d '{"rate_limit_override": 1000000}' >/dev/null

create() {
  curl -sf "http://127.0.0.1:$PORT/v1/keys" -H "X-Api-Key: $ADMIN" -H 'Content-Type: application/json' -d "$1" \
    | sed 's/.*"key":"\([^"]*\)".*/\1/'
  echo
}
VERIFIER_KEY="$(create '{"name":"api server","permissions":["keys:verify"]}')"
export VERIFIER_KEY KEYS_FILE="$WORK/keys.txt"
: >"$KEYS_FILE"
for i in $(seq "$KEYS"); do create "{\"name\":\"bench $i\",\"permissions\":[\"dns:read\"]}" >>"$KEYS_FILE"; done
echo "stored credentials: $(sqlite3 "$DB" 'select count(*) from credentials'), keys used: $(wc -l <"$KEYS_FILE")"

{
  echo "map \$http_x_api_key \$keyward_static {"
  echo "  default 0;"
  sed 's/.*/  "&" 1;/' "$KEYS_FILE"
  echo "}"
} >"$WORK/keys.map"
cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy; fastcgi_temp_path $WORK/fastcgi;
  uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
  include $WORK/keys.map;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { if (\$keyward_static = 0) { return 401; } return 200; }
  }
}
NGINX
$SERVER_CPU nginx -c "$WORK/nginx.conf"

run() {
  echo "== $1"
  shift
  $LOAD_CPU wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" | grep -E "Requests/sec|Latency |99%|Non-2xx|Socket errors"
}
# The baseline runs the same wrk script as /v1/authorize, so wrk spends the same on each.
run "baseline: GET /healthz, same script as authorize" -s benches/authorize.lua "http://127.0.0.1:$PORT/healthz"
run "baseline: the verify requests (POST with body) sent to /healthz, answered 405 at once" -s benches/verify.lua "http://127.0.0.1:$PORT/healthz"
run "POST /v1/keys/verify" -s benches/verify.lua "http://127.0.0.1:$PORT/v1/keys/verify"
run "GET /v1/authorize" -s benches/authorize.lua "http://127.0.0.1:$PORT/v1/authorize"
run "nginx static map (1 worker)" -s benches/authorize.lua "http://127.0.0.1:$NGINX_PORT/"
