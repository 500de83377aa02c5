#!/usr/bin/env bash
# Restarts the local PostgreSQL or RabbitMQ started by scripts/services.sh (for outage
# drills and the outage tests): `restart-service.sh postgres|rabbitmq`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
case "${1:-}" in
  postgres)
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 restart >/dev/null
    echo "restart-service: PostgreSQL restarted" ;;
  rabbitmq)
    rabbitmqctl_local -q stop_app >/dev/null
    rabbitmqctl_local -q start_app >/dev/null
    rabbitmqctl_local -q await_startup >/dev/null
    echo "restart-service: RabbitMQ restarted" ;;
  *) echo "usage: $0 postgres|rabbitmq" >&2; exit 64 ;;
esac
