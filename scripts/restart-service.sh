#!/usr/bin/env bash
# Restarts, stops or starts the local PostgreSQL or RabbitMQ started by scripts/services.sh
# (for outage drills and the outage tests):
#   restart-service.sh postgres|rabbitmq [restart|stop|start]   (default: restart)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
action="${2:-restart}"
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
  postgres:start)
    # services.sh starts whatever is not running, with the same settings as the first time.
    bash "$ROOT/scripts/services.sh" >/dev/null ;;
  *) echo "usage: $0 postgres|rabbitmq [restart|stop|start]" >&2; exit 64 ;;
esac
echo "restart-service: $1 $action done"
