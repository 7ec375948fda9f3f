#!/usr/bin/env bash
# Instructions per request, counted by callgrind, of the server's connection task (HTTP
# parsing, middleware, the handler, writing the answer) for GET /healthz (the baseline),
# GET /v1/authorize, POST /v1/keys/verify and the verify request sent to /healthz (405,
# verify's baseline): the steady measure beside verify.sh's requests per second, which
# move by ±20 % on this machine from one minute to the next. Each endpoint is sent N1 and
# then N2 requests on one keep-alive connection, round-robin over KEYS keys; the
# difference over N2 - N1 is one request.
#
#   benches/instructions.sh        (needs a release build, valgrind, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${KEYS:-200}"
N1="${N1:-$KEYS}"
N2="${N2:-1200}"
PORT="${PORT:-18098}"
. benches/common.sh
for tool in valgrind callgrind_annotate curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
[ -x "$TARGET" ] || { echo "build first: cargo build --release" >&2; exit 1; }

bench_init "$TARGET" "$WORK/b.db"
bench_serve "$TARGET" "$WORK/b.db"
bench_keys "$KEYS"
bench_stop

echo "instructions per request ($(git rev-parse --short HEAD), $KEYS keys, requests $N1 → $N2):"
for kind in healthz authorize verify-405 verify; do
  status=200
  [ "$kind" = verify-405 ] && status=405
  instructions_per_request "$TARGET" "$WORK/b.db" "$kind" "$KEYS_FILE" "$status"
  echo "  $kind: $PER"
done
