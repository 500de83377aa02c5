#!/usr/bin/env bash
# Installs missing Debian packages and starts PostgreSQL and RabbitMQ on loopback with their
# data under .local/. Idempotent: a server that already answers is left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

install_missing_packages() {
  local wanted=(libpq-dev librabbitmq-dev postgresql postgresql-contrib rabbitmq-server curl jq)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "services: installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # policy-rc.d keeps the packages from starting system-wide servers we do not use.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

start_postgres() {
  local bin; bin="$(pg_bin)"
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    echo "services: PostgreSQL already answers on 127.0.0.1:$PG_PORT"
  else
    mkdir -p "$LOCAL/pg" "$PG_SOCKET_DIR"
    if [ "$(id -u)" = 0 ]; then
      chown -R postgres:postgres "$LOCAL/pg"
      # PostgreSQL runs as `postgres`, which must reach the data directory; a checkout under
      # a private home directory is not reachable, so the data then lives under /var/tmp.
      if ! runuser -u postgres -- test -w "$LOCAL/pg"; then
        local alt="/var/tmp/emporium-$(echo "$ROOT" | md5sum | cut -c1-8)/pg"
        echo "services: postgres cannot reach $LOCAL/pg; keeping its data in $alt"
        mkdir -p "$alt/run" && chown -R postgres:postgres "$(dirname "$alt")"
        PG_DATA="$alt/data"; PG_SOCKET_DIR="$alt/run"; PG_LOG="$alt/postgres.log"
        echo "$alt" > "$LOCAL/pg/location"
      fi
    fi
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      echo "services: initialising PostgreSQL in $PG_DATA"
      as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    echo "services: starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_SOCKET_DIR -c max_connections=1000 -c shared_preload_libraries=pg_stat_statements" >/dev/null
  fi
  # The application role and database; harmless when they exist.
  if [ -d "$PG_SOCKET_DIR" ] && [ -S "$PG_SOCKET_DIR/.s.PGSQL.$PG_PORT" ]; then
    local psql=("$bin/psql" -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1)
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
      as_postgres "${psql[@]}" -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
    fi
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
      as_postgres "${psql[@]}" -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\""
    fi
  fi
}

rabbit_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; }

start_rabbitmq() {
  if rabbit_answers; then
    echo "services: RabbitMQ already answers on 127.0.0.1:$AMQP_PORT"
  else
    mkdir -p "$RABBIT_HOME/log" "$RABBIT_HOME/mnesia"
    [ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ] || echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
    cat > "$RABBIT_HOME/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
CONF
    echo "services: starting RabbitMQ on 127.0.0.1:$AMQP_PORT"
    HOME="$RABBIT_HOME" nohup "$RABBIT_BIN/rabbitmq-server" >"$RABBIT_HOME/server.out" 2>&1 &
    HOME="$RABBIT_HOME" "$RABBIT_BIN/rabbitmqctl" --timeout 120 wait "$RABBITMQ_PID_FILE" >/dev/null
    HOME="$RABBIT_HOME" "$RABBIT_BIN/rabbitmqctl" await_startup >/dev/null
  fi
  local users
  if ! users="$(rabbitmqctl_local -q list_users 2>/dev/null)"; then
    # A broker started elsewhere (another checkout, a system service): not ours to manage.
    echo "services: the RabbitMQ on port $AMQP_PORT is not managed from this checkout; leaving its users alone"
  elif ! grep -q "^$AMQP_USER\b" <<<"$users"; then
    rabbitmqctl_local -q add_user "$AMQP_USER" "$AMQP_PASSWORD" >/dev/null
    rabbitmqctl_local -q set_user_tags "$AMQP_USER" administrator >/dev/null
    rabbitmqctl_local -q set_permissions -p / "$AMQP_USER" ".*" ".*" ".*" >/dev/null
  fi
}

localstripe_answers() { curl -s -o /dev/null -m 2 "$LOCALSTRIPE_URL/v1/customers" -u sk_test_probe: 2>/dev/null; }

# localstripe (PyPI, pinned) in its own virtualenv under .local/, started on loopback.
start_localstripe() {
  if localstripe_answers; then
    echo "services: localstripe already answers at $LOCALSTRIPE_URL"
    return
  fi
  local venv="$LOCAL/localstripe"
  if ! "$venv/bin/python" -c "import localstripe" 2>/dev/null; then
    echo "services: installing localstripe $LOCALSTRIPE_VERSION into $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
      $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check "localstripe==$LOCALSTRIPE_VERSION"
  fi
  nohup "$venv/bin/python" "$ROOT/scripts/run-localstripe.py" "$LOCALSTRIPE_PORT" >"$LOCAL/localstripe.log" 2>&1 &
  echo $! > "$LOCAL/localstripe.pid"
  for _ in $(seq 1 100); do localstripe_answers && { echo "services: localstripe answers at $LOCALSTRIPE_URL"; return; }; sleep 0.2; done
  echo "services: localstripe did not start; see $LOCAL/localstripe.log" >&2
  exit 1
}

install_missing_packages
start_postgres
start_rabbitmq
start_localstripe
echo "services: DATABASE_URL=$DATABASE_URL"
echo "services: AMQP_URL=$AMQP_URL"
echo "services: LOCALSTRIPE_URL=$LOCALSTRIPE_URL"
