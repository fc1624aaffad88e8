#!/usr/bin/env bash
# Replays a fixed-seed schemathesis run against the real server: every operation of the OpenAPI
# document, once with a token holding every scope and once without a token. Fails on any 5xx, any
# response that breaks its documented schema, content type or headers, any undocumented status
# code, and a 405 without `Allow`.
#
#   tests/hostile/schemathesis.sh sqlite|postgres
#
# Env: OXBADGE_BIN (default target/debug/oxbadge under CARGO_TARGET_DIR, built if missing),
# SCHEMATHESIS_SEED (default 20261201), SCHEMATHESIS_EXAMPLES (cases per operation with the token,
# default 30; a third of that without), OXBADGE_CI_POSTGRES (default
# postgres://postgres@127.0.0.1:5432). Needs `python3 -m pip install schemathesis` (and psql for
# PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/../.."

ENGINE="${1:-sqlite}"
SEED="${SCHEMATHESIS_SEED:-20261201}"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-30}"
ANON_EXAMPLES=$(( EXAMPLES / 3 > 0 ? EXAMPLES / 3 : 1 ))
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${OXBADGE_BIN:-$TARGET/debug/oxbadge}"
[ -x "$BIN" ] || cargo build --quiet --bin oxbadge
command -v schemathesis >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check schemathesis

WORK="$(mktemp -d)"
SERVER_PID=""
PG_DB=""
PG_BASE="${OXBADGE_CI_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$PG_DB" ]; then psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

case "$ENGINE" in
  sqlite) DB_URL="sqlite://$WORK/data/oxbadge.db?mode=rwc" ;;
  postgres)
    PG_DB="oxbadge_schemathesis_$$"
    psql "$PG_BASE/postgres" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
    DB_URL="$PG_BASE/$PG_DB" ;;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2 ;;
esac

export OXBADGE_DATA_DIR="$WORK/data"
export DATABASE_URL="$DB_URL"
export OXBADGE_KEK="schemathesis:$(head -c 32 /dev/urandom | base64)"
export OXBADGE_LOG="${OXBADGE_LOG:-warn}"
export OXBADGE_LOG_FORMAT=json
# The fuzzer is one IP sending thousands of requests: lift the per-IP limits (429 stays documented).
export OXBADGE_AUTH_RATE_LIMIT_PER_MINUTE=1000000
export OXBADGE_AUTH_RATE_LIMIT_BURST=100000
export OXBADGE_VERIFY_RATE_LIMIT_PER_MINUTE=1000000
export OXBADGE_VERIFY_RATE_LIMIT_BURST=100000
mkdir -p "$OXBADGE_DATA_DIR"

SCOPES="issuers:read issuers:write keys:manage credentials:issue credentials:read credentials:status credentials:verify admin"
CLIENT_JSON="$("$BIN" clients create --name schemathesis --scopes "$SCOPES" --json)"
CLIENT_ID="$(printf '%s' "$CLIENT_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')"
CLIENT_SECRET="$(printf '%s' "$CLIENT_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')"

"$BIN" serve --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
BASE=""
for _ in $(seq 1 200); do
  BASE="$(sed -n 's/^oxbadge listening on \([^ ]*\).*/http:\/\/\1/p' "$WORK/server.out" | head -n1)"
  [ -n "$BASE" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "the server did not start"; exit 1; }
  sleep 0.1
done
[ -n "$BASE" ] || { echo "the server did not start"; exit 1; }

TOKEN="$(curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials --data-urlencode "scope=$SCOPES" "$BASE/oauth/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
# Some data for the operations that read it (ids the fuzzer will not guess are still exercised as 404).
ISSUER="$(curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"Fuzz University","url":"https://fuzz.example.edu"}' "$BASE/api/v1/issuers" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"Fuzzing","description":"Survives a fuzzer.","criteria":{"narrative":"Answer every request."}}' \
  "$BASE/api/v1/issuers/$ISSUER/achievements"

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance"
run() {
  local label="$1" examples="$2"; shift 2
  echo "---- schemathesis ($ENGINE, $label): seed $SEED, up to $examples cases per operation ----"
  schemathesis run "$BASE/openapi.json" \
    --checks "$CHECKS" \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --seed "$SEED" \
    --generation-database none \
    --workers 2 \
    --request-timeout 30 \
    --no-color \
    "$@" 2>&1 | tee -a "$WORK/run.log"
  return "${PIPESTATUS[0]}"
}
STATUS=0
run token "$EXAMPLES" -H "Authorization: Bearer $TOKEN" || STATUS=1
run anonymous "$ANON_EXAMPLES" || STATUS=1
CASES="$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$WORK/run.log" | awk '{ s += $1 } END { print s + 0 }')"
echo "schemathesis ($ENGINE): ${CASES:-0} cases in total"
if [ "${CASES:-0}" -lt "${SCHEMATHESIS_MIN_CASES:-1000}" ]; then
  echo "fewer than ${SCHEMATHESIS_MIN_CASES:-1000} cases ran"; STATUS=1
fi
if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  echo "---- server errors ----"; grep '"level":"ERROR"' "$WORK/server.log" | head -n 20; STATUS=1
fi
exit "$STATUS"
