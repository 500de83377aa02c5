#!/usr/bin/env bash
# `make bench`: starts the servers if needed, builds Emporium in release mode, compiles the raw
# rabbitmq-c publisher baseline, then runs scripts/bench/bench.py, which measures every phase,
# prints the figures with their ratios and targets, and writes BENCHMARKS.md.
# Arguments go to bench.py (--quick: a few seconds per phase, to check the bench itself).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
bash scripts/services.sh
echo "bench: building in release mode (the first build takes several minutes)"
swift build -c release
mkdir -p "$LOCAL/bench"
cc -O2 -Wall -o "$LOCAL/bench/amqp_publish" scripts/bench/amqp_publish.c $(pkg-config --cflags --libs librabbitmq)
export BENCH_BIN="$(swift build -c release --show-bin-path)" PG_BIN="$(pg_bin)" BENCH_PUBLISHER="$LOCAL/bench/amqp_publish"
export AMQP_HOST=127.0.0.1 AMQP_PORT AMQP_USER AMQP_PASSWORD PG_SOCKET_DIR PG_PORT
exec python3 scripts/bench/bench.py "$@"
