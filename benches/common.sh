# Sourced by the bench scripts, from the repository's root: a throwaway Keyward server on a
# SQLite file, its first organization, and keys made through its API. Before sourcing, set
# PORT. Sourcing sets TARGET (the release binary), WORK (a temporary folder) and a trap
# that stops the server and removes WORK on exit.

TARGET="${CARGO_TARGET_DIR:-target}/release/keyward"
WORK="$(mktemp -d)"
SERVER=""
trap 'bench_stop; rm -rf "$WORK"' EXIT

# A throwaway master key: no key file is left in the working directory.
export KEYWARD_MASTER_KEY="${KEYWARD_MASTER_KEY:-$(head -c 32 /dev/urandom | base64)}"

# One JSON string field of a one-line answer on stdin, on a line of its own.
field() { sed "s/.*\"$1\":\"\([^\"]*\)\".*/\1/"; echo; }

# bench_init BINARY DATABASE: creates the first organization and sets INIT (its JSON),
# ADMIN (its API key) and ADMIN_ID (that key's id); writes $WORK/bench.toml, which lifts
# the organization's management ceiling (the benches drive the API through one
# organization) and the deployment's default limit of live keys, which the bootstrap key
# has (a key cannot raise its own limit, so the deployment does).
bench_init() {
  INIT="$("$1" --database "$2" init --org-name bench --json 2>"$WORK/init.log")" \
    || { cat "$WORK/init.log" >&2; return 1; }
  ADMIN="$(echo "$INIT" | field api_key)"
  ADMIN_ID="$(echo "$INIT" | field key_id)"
  printf '[rate_limits]\nmanagement_per_second = 1000000\nmanagement_burst = 1000000\nlive_per_second = 1000000\nlive_burst = 2000000\n' >"$WORK/bench.toml"
}

# bench_serve BINARY DATABASE [WRAPPER…]: starts `BINARY serve` on 127.0.0.1:$PORT in the
# background (through WRAPPER, such as `taskset -c 0` or valgrind, when given), sets
# SERVER, and waits until it says it listens, sending it nothing. Its output goes to
# $WORK/server.log.
bench_serve() {
  local binary="$1" database="$2"
  shift 2
  : >"$WORK/server.log"
  KEYWARD_LOG=warn "$@" "$binary" --config "$WORK/bench.toml" --database "$database" serve \
    --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1200); do
    grep -q "Keyward listening" "$WORK/server.log" && return
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$WORK/server.log" >&2
  bench_stop
  exit 1
}

# bench_stop: stops the server bench_serve started and waits for it to finish.
bench_stop() {
  [ -n "$SERVER" ] || return 0
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

# create_key JSON: creates a key through the API with the body JSON; prints its secret.
create_key() {
  curl -sf "http://127.0.0.1:$PORT/v1/keys" -H "X-Api-Key: $ADMIN" \
    -H 'Content-Type: application/json' -d "$1" | field key
}

# inclusive FILE FUNCTION: the instructions a callgrind output file spent in FUNCTION and
# what it calls.
inclusive() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null \
    | awk -v f="$2" 'index($0, f) && /\[/ && !found {gsub(",", "", $1); print $1; found = 1}'
}

# connection_instructions FILE: the instructions of the server's connection tasks (HTTP
# parsing, middleware, the handler, writing the answer) in a callgrind output file: the
# server's task per connection (axum's before the server accepted connections itself), which
# the compiler may or may not have inlined hyper's into.
connection_instructions() {
  local count
  count="$(inclusive "$1" 'keyward_server::listen::connection_task::{{closure}} [')"
  [ -n "$count" ] || count="$(inclusive "$1" 'axum::serve::handle_connection::{{closure}}::{{closure}} [')"
  echo "$count"
}

# request_config KIND N KEYS_FILE: a curl config (for `curl -K`) of N requests on one
# keep-alive connection, round-robin over the keys in KEYS_FILE, each printing its status:
# KIND `authorize` (GET /v1/authorize with the key in X-Api-Key), `healthz` (the same
# request to /healthz), `verify` (POST /v1/keys/verify of the key with
# required_scopes ["dns:read"], as the key $VERIFIER_KEY) or `verify-405` (that request to
# /healthz, which answers 405).
request_config() {
  local kind="$1" n="$2" keys i key
  mapfile -t keys <"$3"
  for ((i = 0; i < n; i++)); do
    key="${keys[i % ${#keys[@]}]}"
    case "$kind" in
      authorize | healthz)
        local path=/v1/authorize
        [ "$kind" = healthz ] && path=/healthz
        printf 'url = "http://127.0.0.1:%s%s"\nheader = "X-Api-Key: %s"\n' "$PORT" "$path" "$key" ;;
      verify | verify-405)
        local path=/v1/keys/verify
        [ "$kind" = verify-405 ] && path=/healthz
        printf 'url = "http://127.0.0.1:%s%s"\nheader = "X-Api-Key: %s"\n' "$PORT" "$path" "$VERIFIER_KEY"
        printf 'header = "Content-Type: application/json"\n'
        printf 'data = "{\\"key\\":\\"%s\\",\\"required_scopes\\":[\\"dns:read\\"]}"\n' "$key" ;;
      *) echo "unknown request kind $kind" >&2; return 1 ;;
    esac
    # `next` starts each URL's options afresh: every one repeats them.
    printf 'output = "/dev/null"\nsilent\nwrite-out = "%%{http_code}\\n"\nnext\n'
  done | sed '$d' # no `next` after the last
}

# instructions_per_request BINARY DATABASE KIND KEYS_FILE STATUS: runs the server under
# callgrind twice, sent N1 and then N2 requests (both set by the caller) of KIND (see
# request_config), and sets PER to the connection tasks' instructions of one request: the
# difference over N2 - N1. With N1 = the number of keys, each key's first use (a cache
# fill) is in both runs. Startup and background tasks (the usage flush) are left out.
# Exits unless every answer has status STATUS and both runs were counted.
instructions_per_request() {
  local binary="$1" database="$2" kind="$3" keys_file="$4" status="$5" n codes count
  local counts=()
  ((N2 > N1)) || { echo "N2 ($N2) must be more than N1 ($N1)" >&2; exit 1; }
  for n in "$N1" "$N2"; do
    bench_serve "$binary" "$database" valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$n"
    request_config "$kind" "$n" "$keys_file" >"$WORK/requests"
    codes="$(curl -K "$WORK/requests" | sort | uniq -c | tr -s ' ')"
    bench_stop
    [ "$codes" = " $n $status" ] || { echo "$kind: unexpected answers: $codes" >&2; exit 1; }
    count="$(connection_instructions "$WORK/callgrind.$n")"
    [[ $count =~ ^[0-9]+$ ]] || { echo "$kind: no count of the connection tasks in callgrind's output" >&2; exit 1; }
    counts+=("$count")
  done
  PER=$(((counts[1] - counts[0]) / (N2 - N1)))
}

# bench_keys N: creates the key `api server` (keys:verify) as VERIFIER_KEY and N keys with
# dns:read into $WORK/keys.txt as KEYS_FILE, both exported for the wrk scripts. Each key may
# make 5,000 requests a second (burst 10,000), so no run meets a rate limit: a refused
# check is a different, cheaper answer.
bench_keys() {
  VERIFIER_KEY="$(create_key '{"name":"api server","permissions":["keys:verify"]}')"
  KEYS_FILE="$WORK/keys.txt"
  export VERIFIER_KEY KEYS_FILE
  local i
  for ((i = 1; i <= $1; i++)); do
    create_key "{\"name\":\"bench $i\",\"permissions\":[\"dns:read\"],\"rate_limit_override\":5000}"
  done >"$KEYS_FILE"
}

# checked_wrk ANSWERS WRK_ARGUMENTS…: runs wrk with --latency (through $LOAD_CPU when set)
# into $WORK/wrk.out and prints its summary lines. Exits if a connection failed, or, when
# ANSWERS is `2xx`, if any answer was not 2xx: a refused or failed request is a different,
# cheaper answer, and the run would not measure what it says. ANSWERS `any` allows them.
checked_wrk() {
  local answers="$1"
  shift
  ${LOAD_CPU:-} wrk --latency "$@" >"$WORK/wrk.out"
  grep -E "Requests/sec|Latency |99%|Tail:|Non-2xx|Socket errors" "$WORK/wrk.out"
  wrk_answered "$answers"
}

# wrk_answered ANSWERS: exits unless the wrk run in $WORK/wrk.out answered as ANSWERS says
# (see checked_wrk).
wrk_answered() {
  if grep -q "Socket errors" "$WORK/wrk.out" \
    || { [ "$1" = 2xx ] && grep -q "Non-2xx" "$WORK/wrk.out"; }; then
    echo "failed or refused requests: the run does not measure what it says" >&2
    exit 1
  fi
}

# wrk_result: "REQUESTS_PER_SECOND P99_MS" of the wrk run in $WORK/wrk.out.
wrk_result() {
  awk '
    /Requests\/sec/ { rps = $2 }
    / 99%/ { p99 = $2; if (p99 ~ /us$/) p99 = p99 / 1000; else if (p99 ~ /ms$/) p99 = p99 + 0; else if (p99 ~ /s$/) p99 = p99 * 1000 }
    END { print rps, p99 }' "$WORK/wrk.out"
}
