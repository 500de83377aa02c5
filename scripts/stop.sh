#!/usr/bin/env bash
# Stops the local PostgreSQL and RabbitMQ started by scripts/services.sh and any running
# Emporium processes started by `make run`. With --apps-only, only those processes.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
stop_run_processes
[ "${1:-}" = "--apps-only" ] && exit 0
if [ -f "$PG_DATA/postmaster.pid" ]; then
  as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null && echo "stop: PostgreSQL stopped"
fi
if [ -f "$RABBITMQ_PID_FILE" ]; then
  rabbitmqctl_local -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 && echo "stop: RabbitMQ stopped"
elif rabbitmqctl_local -q ping >/dev/null 2>&1; then
  # This checkout's node (its cookie answers) without a pid file: a second start that lost
  # the race for the node's ports removes the file the first one wrote. Stop it by name.
  rabbitmqctl_local -q stop >/dev/null 2>&1 && echo "stop: RabbitMQ stopped (no pid file)"
fi
if [ -f "$LOCAL/localstripe.pid" ]; then
  kill "$(cat "$LOCAL/localstripe.pid")" 2>/dev/null && echo "stop: localstripe stopped"
  rm -f "$LOCAL/localstripe.pid"
fi
