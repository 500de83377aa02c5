#!/usr/bin/env bash
# Fuzzes the live API from its own OpenAPI document (GET /api/v1/openapi.json) with
# schemathesis and its default checks, signed in as a SUPERADMIN so every route is reached.
# The API and the four workers run here against a fresh database and their own broker
# namespace, so the run neither sees nor leaves anything in the `make run` data. Exits
# non-zero on any failure. Needs the servers (scripts/services.sh) and a build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

ST_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
VENV="$LOCAL/schemathesis"
PORT="${FUZZ_HTTP_PORT:-8091}"
DB="emporium_fuzz"
BIN="$(swift build --show-bin-path)"

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "schemathesis: installing schemathesis $ST_VERSION into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

admin_url="${DATABASE_URL%/*}/postgres"
psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export DATABASE_URL="${DATABASE_URL%/*}/$DB"
export EMPORIUM_NAMESPACE="emporium-fuzz" HTTP_PORT="$PORT" BCRYPT_COST=4 LOG_LEVEL=info
# The fuzzer is one client sending thousands of requests: lift the per-client request rate
# (429 is still a documented answer, it just would hide the rest).
export RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 REGISTRATIONS_PER_ADDRESS_PER_HOUR=100000000
# Its metrics listener must not collide with a `make run` API's.
export METRICS_PORT=off
# The fuzzer's webhook URLs name hosts that do not resolve: the SSRF rule would refuse them all.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=true
"$BIN/emporium" migrate >/dev/null
email="fuzz-admin@emporium.local"
export FUZZ_PASSWORD="fuzz-superadmin-$(date +%s%N)"
"$BIN/emporium" user create --email "$email" --password-env FUZZ_PASSWORD --role SUPERADMIN >/dev/null

logs="$LOCAL/logs/schemathesis"
mkdir -p "$logs"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT
"$BIN/emporium-api" >"$logs/api.log" 2>&1 & pids+=($!)
for role in stock payment order notification; do
  "$BIN/emporium-$role-worker" >"$logs/$role-worker.log" 2>&1 & pids+=($!)
done
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.5
done

token="$(curl -fsS -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/api/v1/auth/login" \
  -d "{\"email\":\"$email\",\"password\":\"$FUZZ_PASSWORD\"}" | jq -r .access_token)"
[ -n "$token" ] && [ "$token" != null ] || { echo "schemathesis: could not sign in" >&2; exit 1; }

echo "schemathesis: fuzzing http://127.0.0.1:$PORT (API log: $logs/api.log)"
set +e
"$VENV/bin/st" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  --url "http://127.0.0.1:$PORT" \
  -H "Authorization: Bearer $token" \
  --exclude-path /api/v1/auth/logout-all \
  --exclude-path '/api/v1/orders/{id}/events/ws' \
  --max-examples "${FUZZ_MAX_EXAMPLES:-50}" \
  --workers 1 \
  --request-timeout 30 \
  --no-color \
  --report junit --report-dir "$logs" \
  "$@" 2>&1 | tee "$logs/run.txt"
status=${PIPESTATUS[0]}
set -e
# The order event WebSocket is left out too: an HTTP fuzzer's plain GET can only be answered
# 426 (Upgrade Required), which it counts as a valid request refused; OrderEventStreamTests
# drive it as a WebSocket (authorization, messages, close) instead.
# `logout-all` is left out above: it revokes every access token issued so far, the fuzzer's
# own included, and every signed-in operation after it would only be answered 401. If the
# token stops working anyway, the run proved little: say so and fail. POST /auth/refresh and
# /auth/login judge a credential in the body, not the bearer token: a made-up refresh token
# is rightly answered 401 every time (a run whose bodies were all well-formed saw only 401
# there). Any other operation listed under "401 Unauthorized" or "403 Forbidden", or a
# shortened list, fails the run.
if grep -q "Authentication failed" "$logs/run.txt"; then
  unexpected="$(awk '/^40[13] [A-Za-z]+ \([0-9]+ operations?\):$/ {listed = 1; next} listed && /^[[:space:]]*$/ {listed = 0} listed' "$logs/run.txt" \
    | grep -Ev '^  - POST /api/v1/auth/(refresh|login)$' || true)"
  listed="$(grep -cE '^40[13] [A-Za-z]+ \([0-9]+ operations?\):$' "$logs/run.txt" || true)"
  if [ "$listed" = 0 ] || [ -n "$unexpected" ]; then
    echo "schemathesis: operations answered only 401/403 with the SUPERADMIN token; the signed-in routes were not fuzzed:" >&2
    echo "${unexpected:-(no list of operations in $logs/run.txt)}" >&2
    exit 1
  fi
  echo "schemathesis: only the credential exchanges (POST /auth/refresh, /auth/login) answered 401 throughout, as made-up credentials should be"
fi
exit "$status"
