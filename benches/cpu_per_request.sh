#!/usr/bin/env bash
# Server CPU time per request (user + system, from /proc) for /healthz, /v1/authorize and
# /v1/keys/verify under wrk (2 threads, 64 connections, 5 s each), round-robin over KEYS
# keys. Unlike requests per second, this does not depend on how the two cores are shared
# with wrk.
#
#   KEYS=1000 benches/cpu_per_request.sh
set -euo pipefail
# A throwaway master key: no key file is left in the working directory.
export KEYWARD_MASTER_KEY="${KEYWARD_MASTER_KEY:-$(head -c 32 /dev/urandom | base64)}"
cd "$(dirname "$0")/.."
KEYS="${KEYS:-1000}"
PORT="${PORT:-18096}"
T="${CARGO_TARGET_DIR:-target}/release/keyward"
W="$(mktemp -d)"
trap 'kill "$S" 2>/dev/null || true; rm -rf "$W"' EXIT
INIT="$("$T" --database "$W/b.db" init --org-name bench --json)"
ADMIN="$(echo "$INIT" | sed 's/.*"api_key":"\([^"]*\)".*/\1/')"
# The bench drives the management API through one organization: lift its ceiling.
printf '[rate_limits]\nmanagement_per_second = 1000000\nmanagement_burst = 1000000\n' >"$W/bench.toml"
KEYWARD_LOG=warn "$T" --config "$W/bench.toml" --database "$W/b.db" serve --listen "127.0.0.1:$PORT" >"$W/log" 2>&1 &
S=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# The bench drives everything through the bootstrap key: lift its own rate limit.
curl -sf -X PATCH "http://127.0.0.1:$PORT/v1/keys/$(echo "$INIT" | sed 's/.*"key_id":"\([^"]*\)".*/\1/')" \
  -H "X-Api-Key: $ADMIN" -H 'Content-Type: application/json' -d '{"rate_limit_override": 1000000}' >/dev/null
create() {
  curl -sf "http://127.0.0.1:$PORT/v1/keys" -H "X-Api-Key: $ADMIN" -H 'Content-Type: application/json' -d "$1" \
    | sed 's/.*"key":"\([^"]*\)".*/\1/'
  echo
}
export VERIFIER_KEY KEYS_FILE="$W/keys.txt"
VERIFIER_KEY="$(create '{"name":"api server","permissions":["keys:verify"]}')"
: >"$KEYS_FILE"
# 5,000 requests a second a key (burst 10,000): no run meets a rate limit.
for i in $(seq "$KEYS"); do create "{\"name\":\"k$i\",\"permissions\":[\"dns:read\"],\"rate_limit_override\":5000}" >>"$KEYS_FILE"; done
cpu() { awk '{print $14 + $15}' "/proc/$S/stat"; }
for target in "healthz benches/authorize.lua /healthz" "authorize benches/authorize.lua /v1/authorize" "verify benches/verify.lua /v1/keys/verify"; do
  set -- $target
  c0=$(cpu)
  n=$(wrk -t2 -c64 -d5s -s "$2" "http://127.0.0.1:$PORT$3" | awk '/requests in/ {print $1}')
  c1=$(cpu)
  echo "$1: $n requests, $(python3 -c "print(round(($c1 - $c0) * 1e6 / 100 / $n, 1))") µs of server CPU per request"
done
