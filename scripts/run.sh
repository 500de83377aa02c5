#!/usr/bin/env bash
# Builds, migrates, seeds and starts the API and the workers in the background, logging to
# .local/logs/. Returns once the API answers GET /health. `make stop` stops them.
# Replicas per worker: STOCK_WORKERS, PAYMENT_WORKERS, ORDER_WORKERS, NOTIFICATION_WORKERS
# (default 1 each); every replica serves GET /health and /ready on its own port from
# WORKER_HEALTH_PORT_BASE (default 9100) upwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

HTTP_PORT="${HTTP_PORT:-8080}"
export HTTP_PORT
mkdir -p "$LOCAL/logs"

# Processes from an earlier `make run` are replaced, not duplicated (and waited for: they
# hold their ports while they drain).
stop_run_processes

# `make test` has just built everything with the tests (EMPORIUM_SKIP_BUILD=1): a plain
# `swift build` would build the whole tree again without test support.
[ "${EMPORIUM_SKIP_BUILD:-0}" = 1 ] || swift build
BIN="$(swift build --show-bin-path)"
"$BIN/emporium" migrate
"$BIN/emporium" seed

# start NAME LOG [VAR=value ...]: runs .build/.../NAME in the background with the variables.
start() {
  local name="$1" log="$2"; shift 2
  nohup env "$@" "$BIN/$name" >>"$LOCAL/logs/$log.log" 2>&1 &
  echo $! >> "$LOCAL/run.pids"
  echo "run: started $log (pid $!, log .local/logs/$log.log)"
}

start emporium-api emporium-api
health_port="${WORKER_HEALTH_PORT_BASE:-9100}"
for role in stock payment order notification; do
  count_var="$(echo "$role" | tr '[:lower:]' '[:upper:]')_WORKERS"
  count="${!count_var:-1}"
  [[ "$count" =~ ^[0-9]+$ ]] || { echo "run: $count_var must be a number, not '$count'" >&2; exit 64; }
  for i in $(seq 1 "$count"); do
    health_port=$((health_port + 1))
    log="emporium-$role-worker"; [ "$count" -gt 1 ] && log="$log-$i"
    start "emporium-$role-worker" "$log" EMPORIUM_INSTANCE="$role-$i" HEALTH_PORT="$health_port"
    echo "run:   $role replica $i: http://127.0.0.1:$health_port/health"
  done
done

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1; then
    echo "run: API answers on http://127.0.0.1:$HTTP_PORT (GET /health, GET /ready); metrics on http://127.0.0.1:${METRICS_PORT:-9464}/metrics; stop with 'make stop'"
    [ "${STOREFRONT_ENABLED:-true}" = false ] || echo "run: storefront at http://127.0.0.1:$HTTP_PORT/ (sign up and buy; test cards: the one that pays is preselected)"
    [ "${CONSOLE_ENABLED:-true}" = false ] || echo "run: operator console at http://127.0.0.1:$HTTP_PORT/admin (sign in as the admin below)"
    echo "run: admin $SEED_ADMIN_EMAIL, password in ${SECRETS_FILE#$ROOT/} (generated on first use; set SEED_ADMIN_PASSWORD and JWT_SECRET to choose your own)"
    curl -fsS "http://127.0.0.1:$HTTP_PORT/ready" && echo
    exit 0
  fi
  sleep 0.5
done
echo "run: the API did not answer GET /health within 60 s; see .local/logs/emporium-api.log" >&2
tail -20 "$LOCAL/logs/emporium-api.log" >&2 || true
exit 1
