#!/usr/bin/env bash
# The operator console and the storefront in a real browser: headless Chromium driven by
# Selenium (Debian's chromium and chromium-driver, selenium from PyPI; installed here when
# missing) against two Emporiums of their own, each with its own database and RabbitMQ vhost
# and one worker per role: one with the fake provider, the API on BROWSER_TEST_PORT (default
# 8091), and one with Stripe played by localstripe, the API on BROWSER_TEST_STRIPE_PORT
# (default the next port). Screenshots go to BROWSER_TEST_OUTPUT (default
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
PORT="${BROWSER_TEST_PORT:-8091}"
STRIPE_PORT="${BROWSER_TEST_STRIPE_PORT:-$((PORT + 1))}"
OUTPUT="${BROWSER_TEST_OUTPUT:-$ROOT/.build/test-output/browser}"
mkdir -p "$OUTPUT"
logs="$OUTPUT/logs"; mkdir -p "$logs"; rm -f "$logs"/*.log "$OUTPUT/failures.txt"
pids=()
databases=()
vhosts=()

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ $status != 0 ]; then
    for log in "$logs"/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done
    # Last, where a log's tail shows it: each failed test, where it left the browser, its
    # requests with their statuses and what the API logged above info meanwhile.
    if [ -s "$OUTPUT/failures.txt" ]; then echo "=== browser tests that failed" >&2; cat "$OUTPUT/failures.txt" >&2; fi
  fi
  for db in "${databases[@]}"; do
    psql -q "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
  done
  for vhost in "${vhosts[@]}"; do bash "$ROOT/scripts/rabbitmqctl" -q delete_vhost "$vhost" >/dev/null 2>&1 || true; done
  exit $status
}
trap cleanup EXIT

# An Emporium of its own: database and vhost `name`, the API on `port`, one worker per role
# (health ports above port + 100), logs as `name`-*.log; with the caller's environment. It
# runs in this shell, so the cleanup above sees its processes, database and vhost.
start_stack() {
  local name="$1" port="$2"
  local db="emporium_${name}_$suffix" vhost="$name-$suffix"
  databases+=("$db"); vhosts+=("$vhost")
  psql -q "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE \"$db\"" >/dev/null
  bash "$ROOT/scripts/rabbitmqctl" -q add_vhost "$vhost"
  bash "$ROOT/scripts/rabbitmqctl" -q set_permissions -p "$vhost" "$AMQP_USER" ".*" ".*" ".*"
  export DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$db"
  export AMQP_URL="amqp://$AMQP_USER:$AMQP_PASSWORD@127.0.0.1:$AMQP_PORT/$vhost"
  export HTTP_PORT="$port" METRICS_PORT=off LOG_LEVEL=info BCRYPT_COST=4
  export SEED_ADMIN_EMAIL="admin@browser.test" SEED_ADMIN_PASSWORD="browser-admin-$suffix"
  "$BIN/emporium" migrate >/dev/null
  "$BIN/emporium" seed >/dev/null
  export API_LOG="$logs/$name-api.log"
  nohup "$BIN/emporium-api" >"$API_LOG" 2>&1 &
  pids+=($!)
  local health=$((port + 100 + 10 * ${#databases[@]}))
  for role in stock payment order notification; do
    health=$((health + 1))
    EMPORIUM_INSTANCE="$name-$role" HEALTH_PORT="$health" nohup "$BIN/emporium-$role-worker" >"$logs/$name-$role.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { echo "browser-tests: the $name API is not ready" >&2; exit 1; }
  export BASE_URL="http://127.0.0.1:$port" OUTPUT="$OUTPUT" EMPORIUM_BIN="$BIN/emporium"
}

status=0
# BROWSER_TESTS=fake or stripe runs one of the two stacks' tests (default: both).
only="${BROWSER_TESTS:-all}"
if [ "$only" != stripe ]; then
  # The fake provider takes 3 s per charge, so the order page is open before the order is
  # paid and the test sees it move to CONFIRMED live.
  export PAYMENT_PROVIDER_LATENCY_MS=3000
  start_stack browser "$PORT"
  "$LOCAL/browser/bin/python" "$ROOT/Tests/Browser/console_test.py" || status=1
  "$LOCAL/browser/bin/python" "$ROOT/Tests/Browser/storefront_test.py" || status=1
  unset PAYMENT_PROVIDER_LATENCY_MS
fi
[ "$only" != fake ] || exit $status

# The storefront with Stripe: localstripe (started by scripts/services.sh) plays Stripe's API,
# its Stripe.js and its webhooks, signed with this run's secret and sent to this stack. One
# endpoint id for every run: localstripe keeps its endpoints until it restarts and sends each
# event to all of them, so a new id per run would have this stack receive every event again
# under each earlier run's secret (refused, and logged as warnings a failure report shows).
export PAYMENT_PROVIDER=stripe STRIPE_API_BASE="$LOCALSTRIPE_URL" STRIPE_SECRET_KEY="sk_test_browser$suffix"
export STRIPE_PUBLISHABLE_KEY="pk_test_browser$suffix" STRIPE_JS_URL="$LOCALSTRIPE_URL/js.stripe.com/v3/"
export STRIPE_WEBHOOK_SECRET="whsec_browser$suffix" STRIPE_TIMEOUT_MS=5000
curl -fsS -o /dev/null "$LOCALSTRIPE_URL/_config/webhooks/browser-tests" \
  -d "url=http://127.0.0.1:$STRIPE_PORT/api/v1/webhooks/stripe" -d "secret=$STRIPE_WEBHOOK_SECRET" \
  || { echo "browser-tests: localstripe does not answer at $LOCALSTRIPE_URL (scripts/services.sh starts it)" >&2; exit 1; }
start_stack browserstripe "$STRIPE_PORT"
"$LOCAL/browser/bin/python" "$ROOT/Tests/Browser/storefront_stripe_test.py" || status=1
exit $status
