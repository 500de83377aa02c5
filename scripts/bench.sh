#!/usr/bin/env bash
# `make bench`: starts the servers if needed, builds Emporium in release mode, compiles the raw
# rabbitmq-c publisher baseline, then runs scripts/bench/bench.py, which measures every phase,
# prints the figures with their ratios and targets, and writes BENCHMARKS.md.
# Arguments go to bench.py (--quick: a few seconds per phase, to check the bench itself).
set -euo pipefail
given_database_url="${DATABASE_URL:-}"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# The database is local, so every process (and pgbench, for the floors) connects through its
# Unix-domain socket, as a deployment with a local database would: measured against TCP in
# BENCHMARKS.md ("TCP against the Unix-domain socket"). A DATABASE_URL of your own, or
# BENCH_DATABASE_TCP=1, is used as given.
if [ -z "$given_database_url" ] && [ "${BENCH_DATABASE_TCP:-0}" != 1 ]; then
  export DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@/$PG_DB?host=$PG_SOCKET_DIR"
fi
cd "$ROOT"
bash scripts/services.sh
echo "bench: building in release mode (the first build takes several minutes)"
swift build -c release
mkdir -p "$LOCAL/bench"
cc -O2 -Wall -o "$LOCAL/bench/amqp_publish" scripts/bench/amqp_publish.c $(pkg-config --cflags --libs librabbitmq)
export BENCH_BIN="$(swift build -c release --show-bin-path)" PG_BIN="$(pg_bin)" BENCH_PUBLISHER="$LOCAL/bench/amqp_publish"
export AMQP_HOST=127.0.0.1 AMQP_PORT AMQP_USER AMQP_PASSWORD PG_SOCKET_DIR PG_PORT
echo "bench: PostgreSQL at ${DATABASE_URL/:$PG_PASSWORD@/:***@}"
exec python3 scripts/bench/bench.py "$@"
