#!/usr/bin/env bash
# Restarts, stops or starts the local PostgreSQL or RabbitMQ started by scripts/services.sh
# (for outage drills and the outage tests), or freezes and thaws it (SIGSTOP / SIGCONT on
# all of its processes: what a hung host or a network partition looks like to a client):
#   restart-service.sh postgres|rabbitmq [restart|stop|start|freeze|thaw]   (default: restart)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
action="${2:-restart}"

# The server's processes: PostgreSQL's postmaster and its children; RabbitMQ's Erlang VM.
service_pids() {
  case "$1" in
    postgres)
      local main; main="$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null)" || true
      [ -n "$main" ] && { echo "$main"; pgrep -P "$main" || true; } ;;
    rabbitmq)
      cat "$RABBITMQ_PID_FILE" 2>/dev/null || true ;;
  esac
}
signal_service() {
  local pids; pids="$(service_pids "$1")"
  [ -n "$pids" ] || { echo "restart-service: no $1 processes found" >&2; exit 1; }
  # shellcheck disable=SC2086
  kill "-$2" $pids
}
case "${1:-}:$action" in
  postgres:restart)
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 restart >/dev/null ;;
  postgres:stop)
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ;;
  rabbitmq:restart)
    rabbitmqctl_local -q stop_app >/dev/null
    rabbitmqctl_local -q start_app >/dev/null
    rabbitmqctl_local -q await_startup >/dev/null ;;
  rabbitmq:stop)
    rabbitmqctl_local -q stop_app >/dev/null ;;
  rabbitmq:start)
    rabbitmqctl_local -q start_app >/dev/null
    rabbitmqctl_local -q await_startup >/dev/null ;;
  postgres:freeze|rabbitmq:freeze)
    signal_service "$1" STOP ;;
  postgres:thaw|rabbitmq:thaw)
    signal_service "$1" CONT ;;
  postgres:start)
    # services.sh starts whatever is not running, with the same settings as the first time.
    bash "$ROOT/scripts/services.sh" >/dev/null ;;
  *) echo "usage: $0 postgres|rabbitmq [restart|stop|start|freeze|thaw]" >&2; exit 64 ;;
esac
echo "restart-service: $1 $action done"
