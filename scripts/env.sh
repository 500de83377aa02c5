# Shared settings for the local services. Sourced by the other scripts; every value can be
# overridden from the environment.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${EMPORIUM_LOCAL_DIR:-$ROOT/.local}"

PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-emporium}"
PG_PASSWORD="${PG_PASSWORD:-emporium}"
PG_DB="${PG_DB:-emporium}"
PG_DATA="$LOCAL/pg/data"
PG_SOCKET_DIR="$LOCAL/pg/run"
PG_LOG="$LOCAL/pg/postgres.log"
if [ -f "$LOCAL/pg/location" ]; then  # see services.sh: data kept outside an unreachable checkout
  PG_DATA="$(cat "$LOCAL/pg/location")/data"; PG_SOCKET_DIR="$(cat "$LOCAL/pg/location")/run"
  PG_LOG="$(cat "$LOCAL/pg/location")/postgres.log"
fi
# The server's Unix-domain socket directory (a DATABASE_URL may name it: ?host=$PG_SOCKET_DIR).
export PG_SOCKET_DIR

AMQP_PORT="${AMQP_PORT:-5672}"
AMQP_USER="${AMQP_USER:-emporium}"
AMQP_PASSWORD="${AMQP_PASSWORD:-emporium}"
RABBIT_HOME="$LOCAL/rabbitmq"

# localstripe, the Stripe emulator the Stripe adapter's tests run against (loopback only).
LOCALSTRIPE_PORT="${LOCALSTRIPE_PORT:-8420}"
LOCALSTRIPE_VERSION=1.15.10
export LOCALSTRIPE_URL="${LOCALSTRIPE_URL:-http://127.0.0.1:$LOCALSTRIPE_PORT}"

export DATABASE_URL="${DATABASE_URL:-postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB}"
export AMQP_URL="${AMQP_URL:-amqp://$AMQP_USER:$AMQP_PASSWORD@127.0.0.1:$AMQP_PORT/%2F}"

# RabbitMQ keeps all of its state under .local/ and listens on loopback only.
export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-emporium@localhost}"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$AMQP_PORT"
export RABBITMQ_DIST_PORT="${RABBITMQ_DIST_PORT:-25672}"
export RABBITMQ_MNESIA_BASE="$RABBIT_HOME/mnesia"
export RABBITMQ_LOG_BASE="$RABBIT_HOME/log"
export RABBITMQ_PID_FILE="$RABBIT_HOME/rabbitmq.pid"
export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_HOME/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$RABBIT_HOME/rabbitmq"
export ERL_EPMD_ADDRESS=127.0.0.1
export HOME_FOR_RABBIT="$RABBIT_HOME"
RABBIT_BIN=/usr/lib/rabbitmq/bin

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

rabbitmqctl_local() { HOME="$RABBIT_HOME" "$RABBIT_BIN/rabbitmqctl" "$@"; }

# Secrets for `make run` and `make test`: random, generated on first use into
# .local/secrets.env (readable by this user only) and kept there; nothing published in the
# repository signs a token. The environment wins when it sets them (production does).
SECRETS_FILE="$LOCAL/secrets.env"
if [ -z "${JWT_SECRET:-}" ] || [ -z "${SEED_ADMIN_PASSWORD:-}" ]; then
  if [ ! -f "$SECRETS_FILE" ]; then
    mkdir -p "$LOCAL"
    ( umask 077
      printf 'JWT_SECRET=%s\nSEED_ADMIN_PASSWORD=%s\n' \
        "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$SECRETS_FILE" )
    # The password itself is not printed: terminal scrollback and CI logs keep what is echoed.
    echo "secrets: generated a JWT secret and the seed admin's password (admin ${SEED_ADMIN_EMAIL:-admin@emporium.local})" \
      "into $SECRETS_FILE, readable by you only; read it with: grep SEED_ADMIN_PASSWORD $SECRETS_FILE" >&2
  fi
  [ -n "${JWT_SECRET:-}" ] || JWT_SECRET="$(sed -n 's/^JWT_SECRET=//p' "$SECRETS_FILE")"
  [ -n "${SEED_ADMIN_PASSWORD:-}" ] || SEED_ADMIN_PASSWORD="$(sed -n 's/^SEED_ADMIN_PASSWORD=//p' "$SECRETS_FILE")"
fi
export JWT_SECRET SEED_ADMIN_PASSWORD
# The key that seals merchant webhook signing secrets in the database: generated once into the
# same file (added to one made before this key existed).
if [ -z "${WEBHOOK_SECRETS_KEY:-}" ]; then
  if ! grep -q '^WEBHOOK_SECRETS_KEY=' "$SECRETS_FILE" 2>/dev/null; then
    mkdir -p "$LOCAL"
    ( umask 077; printf 'WEBHOOK_SECRETS_KEY=%s\n' "$(head -c 32 /dev/urandom | base64 -w0)" >>"$SECRETS_FILE" )
  fi
  WEBHOOK_SECRETS_KEY="$(sed -n 's/^WEBHOOK_SECRETS_KEY=//p' "$SECRETS_FILE")"
fi
export WEBHOOK_SECRETS_KEY
export SEED_ADMIN_EMAIL="${SEED_ADMIN_EMAIL:-admin@emporium.local}"

# Stops the processes listed in .local/run.pids (a `make run`) and waits until they have
# exited: a worker drains for up to WORKER_DRAIN_TIMEOUT_MS and keeps its health port until
# the end, so a new `make run` started at once would find the ports taken. After 20 s the
# stragglers are killed.
stop_run_processes() {
  [ -f "$LOCAL/run.pids" ] || return 0
  local pids; pids="$(cat "$LOCAL/run.pids")"
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$LOCAL/run.pids"
}
