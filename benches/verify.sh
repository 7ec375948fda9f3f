#!/usr/bin/env bash
# Verification throughput: GET /healthz (an endpoint that only answers, the baseline),
# POST /v1/keys/verify and GET /v1/authorize, all with wrk on 127.0.0.1, beside nginx
# answering from a static `map` of the same keys. Round-robin over KEYS API keys made
# through the API and FILL more stored directly (benches/fill_keys.py), all usable: every
# run sends every one of them, so at FILL=999000 the verification cache holds a million
# credentials, not only the store. Before the rounds a warm-up sends each key once; each
# run then reports its cache misses, and fails past 1 % of its lookups.
#
#   FILL=1000000 benches/verify.sh
#   PIN=1 FILL=1000 benches/verify.sh     # servers on core 0, wrk (one thread) on core 1
#   ROUNDS=5 DURATION=5 benches/verify.sh # five rounds of all five runs, then the median ratios
#
# Runs on this machine vary by ±20 % from one minute to the next, so each ratio is taken
# within one round (runs seconds apart) and the summary gives each ratio's median over the
# rounds.
#
# Needs: a release build, wrk, sqlite3, nginx, curl, python3 (apt-get install wrk sqlite3 nginx).
set -euo pipefail
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
. benches/common.sh
DB="$WORK/bench.db"
cleanup() { bench_stop; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

bench_init "$TARGET" "$DB"
python3 benches/fill_keys.py "$DB" "$FILL" "$WORK/fill_keys.txt"
bench_serve "$TARGET" "$DB" $SERVER_CPU
bench_keys "$KEYS"
# The wrk scripts and nginx's map take every key: those made through the API, then the
# stored ones.
cat "$WORK/fill_keys.txt" >>"$KEYS_FILE"
FIRST_KEY="$(head -1 "$KEYS_FILE")"
curl -sf "http://127.0.0.1:$PORT/v1/authorize" -H "X-Api-Key: $FIRST_KEY" >/dev/null
curl -sf "http://127.0.0.1:$PORT/v1/keys/verify" -H "X-Api-Key: $VERIFIER_KEY" -H 'Content-Type: application/json' \
  -d "{\"key\":\"$FIRST_KEY\",\"required_scopes\":[\"dns:read\"]}" | grep -q '"code":"VALID"'
echo "stored credentials: $(sqlite3 "$DB" 'select count(*) from credentials'), keys used: $(wc -l <"$KEYS_FILE")"

# cache_lookups RESULT: the server's count of verification cache lookups with `result`
# (hit or miss) so far.
cache_lookups() {
  curl -sf "http://127.0.0.1:$PORT/metrics" \
    | awk -v r="$1" '$1 ~ "^keyward_cache_lookups_total" && index($1, "result=\"" r "\"") {s += $2} END {printf "%d\n", s}'
}
# Warm-up: authorize runs, one wrk thread walking the key list from where the last run
# stopped (ROTATION_START), until every key has been sent once, which caches it. Bounded:
# at most 120 runs of 5 s.
total_keys="$(wc -l <"$KEYS_FILE")"
sent=0
for warm in $(seq 120); do
  [ "$sent" -ge "$total_keys" ] && break
  echo "== warm-up $warm: $sent of $total_keys keys sent"
  ROTATION_START="$sent" checked_wrk 2xx -t1 -c"$CONNECTIONS" -d5s -s benches/authorize.lua \
    "http://127.0.0.1:$PORT/v1/authorize" >/dev/null
  sent=$((sent + $(awk '/ requests in /{print $1}' "$WORK/wrk.out")))
done
[ "$sent" -ge "$total_keys" ] || { echo "the warm-up sent $sent of $total_keys keys" >&2; exit 1; }
misses="$(cache_lookups miss)"
echo "cache filled: $misses misses so far for $total_keys keys"

{
  echo "map_hash_max_size $((4 * $(wc -l <"$KEYS_FILE") + 1024));"
  echo "map_hash_bucket_size 128;"
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

ROUNDS="${ROUNDS:-1}"
: >"$WORK/results"
run() { # name, wrk arguments…; appends "round name requests/s p99(ms)" to the results
  local name="$1"
  shift
  echo "== $name"
  # Only the 405 baseline answers other than 200.
  local answers=2xx
  [ "$name" = healthz-405 ] && answers=any
  local hits_before misses_before hits misses
  hits_before="$(cache_lookups hit)" misses_before="$(cache_lookups miss)"
  checked_wrk "$answers" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@"
  hits=$(($(cache_lookups hit) - hits_before)) misses=$(($(cache_lookups miss) - misses_before))
  if [ "$name" = verify ] || [ "$name" = authorize ]; then
    echo "cache: $hits hits, $misses misses"
    # A run that reads the store for more than 1 % of its keys measures the store, not
    # the cache.
    if ((misses * 100 > hits + misses)); then
      echo "$name: $misses of $((hits + misses)) cache lookups missed" >&2
      exit 1
    fi
  fi
  echo "$round $name $(wrk_result)" >>"$WORK/results"
}
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || echo "######## round $round of $ROUNDS"
  # The baseline runs the same wrk script as /v1/authorize, so wrk spends the same on each.
  run healthz -s benches/authorize.lua "http://127.0.0.1:$PORT/healthz"
  run healthz-405 -s benches/verify.lua "http://127.0.0.1:$PORT/healthz"
  run verify -s benches/verify.lua "http://127.0.0.1:$PORT/v1/keys/verify"
  run authorize -s benches/authorize.lua "http://127.0.0.1:$PORT/v1/authorize"
  run nginx -s benches/authorize.lua "http://127.0.0.1:$NGINX_PORT/"
done
echo "== ratios per round (authorize and nginx to healthz, verify to the verify-sized 405 baseline), and their medians"
python3 - "$WORK/results" <<'PY'
import statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    r, name, rps, p99 = line.split()
    rounds.setdefault(r, {})[name] = (float(rps), float(p99))
rows = []
for r, m in sorted(rounds.items(), key=lambda kv: int(kv[0])):
    row = {
        "verify/405": m["verify"][0] / m["healthz-405"][0],
        "authorize/healthz": m["authorize"][0] / m["healthz"][0],
        "authorize/nginx": m["authorize"][0] / m["nginx"][0],
        "verify/nginx": m["verify"][0] / m["nginx"][0],
    }
    rows.append((m, row))
    print(f"round {r}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items())
          + "  |  " + "  ".join(f"{n} {rps:,.0f}/s p99 {p99:.2f} ms" for n, (rps, p99) in m.items()))
if len(rows) > 1:
    print("median: " + "  ".join(f"{k} {statistics.median(r[k] for _, r in rows):.3f}" for k in rows[0][1]))
    for name in rows[0][0]:
        print(f"  {name}: median {statistics.median(m[name][0] for m, _ in rows):,.0f} req/s, "
              f"p99 median {statistics.median(m[name][1] for m, _ in rows):.2f} ms")
PY
