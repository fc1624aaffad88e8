#!/usr/bin/env bash
# Soak: the release server under a mixed wrk load (single issuance, verification, status-list GET,
# token requests, revocation) for MINUTES minutes (default 10). Samples the server's RSS from
# /proc every 10 s, prints requests per minute, errors and RSS min/max, and fails when any response
# was not 2xx (or a socket error happened) or RSS went above MAX_RSS_MB (default 150).
#
#   tests/soak/run.sh                      # 10 minutes on SQLite
#   MINUTES=2 tests/soak/run.sh            # shorter
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/oxbadge_soak tests/soak/run.sh   # PostgreSQL
#                                          # (an existing, empty database)
#   CONNECTIONS=16 tests/soak/run.sh       # wrk connections (default 8, one wrk thread)
#   OXBADGE_BIN=path/to/oxbadge tests/soak/run.sh   # skip the build
#
# Needs wrk (Debian package `wrk`), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES="${MINUTES:-10}"
MAX_RSS_MB="${MAX_RSS_MB:-150}"
CONNECTIONS="${CONNECTIONS:-8}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }

work="$(mktemp -d)"
server_pid=""
sampler_pid=""
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${OXBADGE_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/oxbadge/target}"
  cargo build --release --bin oxbadge
  OXBADGE_BIN="$CARGO_TARGET_DIR/release/oxbadge"
fi
# A private copy: a shared target directory may be rebuilt from another checkout meanwhile.
cp "$OXBADGE_BIN" "$work/oxbadge"
bin="$work/oxbadge"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
export OXBADGE_LISTEN="127.0.0.1:$port"
export OXBADGE_DATA_DIR="$work/data"
export OXBADGE_KEK="soak-1:$(head -c 32 /dev/urandom | base64 -w0)"
export OXBADGE_LOG="${OXBADGE_LOG:-warn}"
export OXBADGE_LOG_FORMAT=json
# One client address drives everything: lift the per-address limits (they are tested elsewhere).
export OXBADGE_AUTH_RATE_LIMIT_PER_MINUTE=100000000 OXBADGE_AUTH_RATE_LIMIT_BURST=1000000
export OXBADGE_VERIFY_RATE_LIMIT_PER_MINUTE=100000000 OXBADGE_VERIFY_RATE_LIMIT_BURST=1000000
export OXBADGE_STATUS_SHAPE=bitstring
mkdir -p "$OXBADGE_DATA_DIR"

"$bin" migrate up >/dev/null
client="$("$bin" clients create --name soak --json \
  --scopes "issuers:write issuers:read credentials:issue credentials:status credentials:read")"
client_id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")"
client_secret="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")"

"$bin" serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "$base/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "$base/health" >/dev/null || { echo "the server did not start"; cat "$work/server.log"; exit 1; }

# Set-up over HTTP: an issuer, an achievement, 300 credentials to verify and 2,000 to revoke
# (round robin: revoking a revoked credential again is a 200 that still writes nothing new).
python3 - "$base" "$client_id" "$client_secret" "$work/soak.lua" <<'PY'
import json, sys, requests
base, cid, secret, out = sys.argv[1:5]
s = requests.Session()
tok = s.post(f"{base}/oauth/token", auth=(cid, secret),
             data={"grant_type": "client_credentials",
                   "scope": "issuers:write credentials:issue credentials:status"}).json()["access_token"]
h = {"Authorization": f"Bearer {tok}"}
issuer = s.post(f"{base}/api/v1/issuers", headers=h, json={"name": "Soak University"}).json()
ach = s.post(f"{base}/api/v1/issuers/{issuer['id']}/achievements", headers=h,
             json={"name": "Endurance", "description": "Issued during the soak.",
                   "criteria": {"narrative": "Keep going."}}).json()
def batch(n, prefix):
    r = s.post(f"{base}/api/v1/credentials/batch", headers=h, timeout=600,
               json={"achievementId": ach["id"],
                     "recipients": [{"email": f"{prefix}{i}@example.edu"} for i in range(n)]})
    r.raise_for_status()
    return r.json()["results"]
verify = [x["credential"] for x in batch(300, "verify")]
revoke = [x["id"] for x in batch(2000, "revoke")]
status_url = verify[0]["credentialStatus"][0]["statusListCredential"] if isinstance(verify[0]["credentialStatus"], list) else verify[0]["credentialStatus"]["statusListCredential"]
status_path = status_url.split("://", 1)[1].split("/", 1)[1]
def lua(s):
    level = ""
    while f"]{level}]" in s:
        level += "="
    return f"[{level}[{s}]{level}]"
with open(out, "w") as f:
    f.write(f"""
local token = {lua(tok)}
local basic = {lua(__import__('base64').b64encode(f'{cid}:{secret}'.encode()).decode())}
local achievement = {lua(ach['id'])}
local status_path = {lua('/' + status_path)}
local verify_bodies = {{ {','.join(lua(json.dumps(v)) for v in verify)} }}
local revoke_ids = {{ {','.join(lua(i) for i in revoke)} }}
""")
    f.write(r"""
local json_auth = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
local json_only = {["Content-Type"] = "application/json"}
local form_basic = {["Authorization"] = "Basic " .. basic, ["Content-Type"] = "application/x-www-form-urlencoded"}
local revoke_body = '{"purpose":"revocation","status":true}'
-- 20 slots: 6 issuances, 6 status GETs, 3 verifications, 3 revocations, 2 token requests.
local plan = {"i","g","v","i","g","r","i","g","t","i","v","g","r","i","g","v","i","g","r","t"}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n = 0; failures = 0; counts = {i=0,g=0,v=0,r=0,t=0}; last = "" end
function request()
  n = n + 1
  local kind = plan[(n % #plan) + 1]
  counts[kind] = counts[kind] + 1
  if kind == "i" then
    return wrk.format("POST", "/api/v1/credentials", json_auth,
      '{"achievementId":"' .. achievement .. '","recipient":{"email":"soak' .. n .. '@example.edu"}}')
  elseif kind == "g" then
    return wrk.format("GET", status_path)
  elseif kind == "v" then
    return wrk.format("POST", "/api/v1/verify", json_only, verify_bodies[(n % #verify_bodies) + 1])
  elseif kind == "r" then
    return wrk.format("POST", "/api/v1/credentials/" .. revoke_ids[(n % #revoke_ids) + 1] .. "/status",
      json_auth, revoke_body)
  else
    return wrk.format("POST", "/oauth/token", form_basic, "grant_type=client_credentials&scope=credentials:issue")
  end
end
function response(status, headers, body)
  if status < 200 or status > 299 then
    failures = failures + 1
    last = tostring(status) .. " " .. string.sub(body or "", 1, 200)
  end
end
function done(summary, latency, requests)
  local f = 0
  local example = ""
  for _, t in ipairs(threads) do
    f = f + t:get("failures")
    if t:get("last") ~= "" then example = t:get("last") end
  end
  local e = summary.errors
  io.write(string.format("SOAK requests=%d duration_us=%d failures=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, f, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
  if example ~= "" then io.write("SOAK last_failure=" .. example .. "\n") end
end
""")
PY

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
(
  while kill -0 "$server_pid" 2>/dev/null; do
    echo "$(date -u +%s) $(rss_kb)" >>"$work/rss"
    sleep 10
  done
) &
sampler_pid=$!

echo "soak: $MINUTES min, $CONNECTIONS connections, server pid $server_pid, ${DATABASE_URL:-SQLite}; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %10s %10s %9s %9s %9s %9s\n' minute requests req/s failures p50_ms p99_ms rss_mb
total=0
errors=0
for m in $(seq 1 "$MINUTES"); do
  out="$(wrk -t1 -c"$CONNECTIONS" -d60s --timeout 10s -s "$work/soak.lua" "$base" 2>&1 || true)"
  line="$(grep '^SOAK requests=' <<<"$out" || true)"
  if [ -z "$line" ]; then echo "wrk printed no summary:"; echo "$out"; exit 1; fi
  field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$line"; }
  req="$(field requests)"; dur="$(field duration_us)"; fail="$(field failures)"; sock="$(field socket_errors)"
  p50="$(field p50_us)"; p99="$(field p99_us)"
  bad=$((fail + sock))
  total=$((total + req)); errors=$((errors + bad))
  rss_now="$(rss_kb || echo 0)"
  printf '%-6s %10d %10.0f %9d %9.1f %9.1f %9.1f\n' "$m" "$req" "$(echo "$req / ($dur / 1000000)" | bc -l)" "$bad" \
    "$(echo "$p50 / 1000" | bc -l)" "$(echo "$p99 / 1000" | bc -l)" "$(echo "${rss_now:-0} / 1024" | bc -l)"
  grep '^SOAK last_failure=' <<<"$out" || true
  kill -0 "$server_pid" 2>/dev/null || { echo "the server died"; tail -20 "$work/server.log"; exit 1; }
done
echo "$(date -u +%s) $(rss_kb)" >>"$work/rss"
min_kb="$(awk 'NF==2 && $2>0 {print $2}' "$work/rss" | sort -n | head -1)"
max_kb="$(awk 'NF==2 && $2>0 {print $2}' "$work/rss" | sort -n | tail -1)"
samples="$(awk 'NF==2 && $2>0' "$work/rss" | wc -l)"
first_kb="$(awk 'NF==2 && $2>0 {print $2; exit}' "$work/rss")"
echo "soak: $total requests in $MINUTES min, $errors errors (non-2xx or socket); RSS over $samples samples: min $((min_kb / 1024)) MB, max $((max_kb / 1024)) MB (first sample $((first_kb / 1024)) MB)"
db_file="$OXBADGE_DATA_DIR/oxbadge.db"
[ -f "$db_file" ] && echo "soak: SQLite database now $(du -m "$db_file" | cut -f1) MB (+ WAL $(du -m "$db_file-wal" 2>/dev/null | cut -f1 || echo 0) MB)"
status=0
if [ "$errors" -gt 0 ]; then echo "FAIL: $errors responses were not 2xx"; status=1; fi
if [ "$max_kb" -gt $((MAX_RSS_MB * 1024)) ]; then echo "FAIL: RSS reached $((max_kb / 1024)) MB (limit $MAX_RSS_MB MB)"; status=1; fi
# grep -c exits 1 when it counts nothing: that is the good case, not a failure of the script.
error_lines="$(grep -c '"level":"ERROR"' "$work/server.log" || true)"
echo "soak: ${error_lines:-0} ERROR lines in the server log"
[ "$status" -eq 0 ] && echo "soak: PASS"
exit "$status"
