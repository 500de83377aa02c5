#!/usr/bin/env bash
# The operator console and the storefront in a real browser: headless Chromium driven by Selenium (Debian's
# chromium and chromium-driver, selenium from PyPI; installed here when missing) against an
# Emporium of its own: its own database and RabbitMQ vhost, the API on BROWSER_TEST_PORT
# (default 8091) and one worker per role. Screenshots go to BROWSER_TEST_OUTPUT (default
# .build/test-output/browser). make test runs this; `make browser-test` runs it alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
SELENIUM_VERSION=4.38.0

install_browser() {
  local missing=()
  for pkg in chromium chromium-driver python3-venv; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "browser-tests: installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local venv="$LOCAL/browser"
  if ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
    echo "browser-tests: installing selenium $SELENIUM_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "selenium==$SELENIUM_VERSION"
  fi
}
install_browser

BIN="$(swift build --show-bin-path)"
[ -x "$BIN/emporium-api" ] || { echo "browser-tests: build first (make build or make test)" >&2; exit 1; }

suffix="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
db="emporium_browser_$suffix"
vhost="browser-$suffix"
PORT="${BROWSER_TEST_PORT:-8091}"
OUTPUT="${BROWSER_TEST_OUTPUT:-$ROOT/.build/test-output/browser}"
mkdir -p "$OUTPUT"
logs="$OUTPUT/logs"; mkdir -p "$logs"; rm -f "$logs"/*.log
pids=()

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ $status != 0 ]; then
    for log in "$logs"/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done
  fi
  psql -q "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
  bash "$ROOT/scripts/rabbitmqctl" -q delete_vhost "$vhost" >/dev/null 2>&1 || true
  exit $status
}
trap cleanup EXIT

psql -q "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE \"$db\"" >/dev/null
bash "$ROOT/scripts/rabbitmqctl" -q add_vhost "$vhost"
bash "$ROOT/scripts/rabbitmqctl" -q set_permissions -p "$vhost" "$AMQP_USER" ".*" ".*" ".*"

export DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$db"
export AMQP_URL="amqp://$AMQP_USER:$AMQP_PASSWORD@127.0.0.1:$AMQP_PORT/$vhost"
export HTTP_PORT="$PORT" METRICS_PORT=off LOG_LEVEL=info BCRYPT_COST=4
# The fake provider takes 3 s per charge, so the order page is open before the order is paid
# and the test sees it move to CONFIRMED live.
export PAYMENT_PROVIDER_LATENCY_MS=3000
export SEED_ADMIN_EMAIL="admin@browser.test" SEED_ADMIN_PASSWORD="browser-admin-$suffix"
"$BIN/emporium" migrate >/dev/null
"$BIN/emporium" seed >/dev/null

nohup "$BIN/emporium-api" >"$logs/api.log" 2>&1 &
pids+=($!)
port=$((PORT + 100))
for role in stock payment order notification; do
  port=$((port + 1))
  EMPORIUM_INSTANCE="browser-$role" HEALTH_PORT="$port" nohup "$BIN/emporium-$role-worker" >"$logs/$role.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null || { echo "browser-tests: the API is not ready" >&2; exit 1; }

export BASE_URL="http://127.0.0.1:$PORT" OUTPUT="$OUTPUT" EMPORIUM_BIN="$BIN/emporium"
status=0
"$LOCAL/browser/bin/python" "$ROOT/Tests/Browser/console_test.py" || status=1
"$LOCAL/browser/bin/python" "$ROOT/Tests/Browser/storefront_test.py" || status=1
exit $status
