#!/usr/bin/env bash
# A few seconds of `emporium bench` against the running `make run` stack, with no
# thresholds: the tool keeps working. Fails on errors, unfinished orders or a broken report.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
BIN="$(swift build --show-bin-path)"
report="$("$BIN/emporium" bench --rate 10 --duration 3 --customers 10 --settle-timeout 60 --json)"
echo "$report" | jq -e '.placed >= 25 and .errors == 0 and .not_terminal == 0 and .confirmed == .placed
  and .placement_latency_ms.p99 > 0 and .confirm_latency_ms.count == .placed' >/dev/null \
  || { echo "bench-smoke: unexpected report:" >&2; echo "$report" >&2; exit 1; }
echo "bench-smoke: $(echo "$report" | jq -r '"\(.placed) orders placed at \(.placement_throughput|floor)/s, placement p99 \(.placement_latency_ms.p99) ms, all confirmed (p99 \(.confirm_latency_ms.p99) ms)"')"

# make bench's own tools: the orchestrator parses, and the raw rabbitmq-c baseline builds,
# publishes a thousand confirmed messages to a queue of its own and consumes them with
# multiple acks (which deletes the queue).
python3 -m py_compile scripts/bench/bench.py
# A setting it cannot use ends it with a message naming the setting, before anything starts.
for bad in "BENCH_CLIENTS=eight" "BENCH_RATES=100,200" "BENCH_REPLICAS=0" "BENCH_E2E_RATE=nan"; do
  # No DATABASE_URL: a setting wrongly accepted ends the run at once instead of benchmarking.
  if refused="$(env -u DATABASE_URL "$bad" timeout 60 python3 scripts/bench/bench.py --no-write 2>&1)"; then
    echo "bench-smoke: make bench accepted $bad" >&2; exit 1
  fi
  grep -q "^bench: ${bad%%=*} must be" <<<"$refused" \
    || { echo "bench-smoke: make bench refused $bad without naming it: $refused" >&2; exit 1; }
done
mkdir -p "$LOCAL/bench"
cc -O2 -Wall -o "$LOCAL/bench/amqp_publish" scripts/bench/amqp_publish.c $(pkg-config --cflags --libs librabbitmq)
queue="bench-smoke.raw-broker-$$"
published="$("$LOCAL/bench/amqp_publish" publish 127.0.0.1 "$AMQP_PORT" "$AMQP_USER" "$AMQP_PASSWORD" / "$queue" 1000 1024 64)"
echo "$published" | jq -e '.messages == 1000 and .per_second > 0' >/dev/null \
  || { echo "bench-smoke: raw publisher: $published" >&2; exit 1; }
consumed="$("$LOCAL/bench/amqp_publish" consume 127.0.0.1 "$AMQP_PORT" "$AMQP_USER" "$AMQP_PASSWORD" / "$queue" 1000 32 64)"
echo "$consumed" | jq -e '.messages == 1000 and .per_second > 0' >/dev/null \
  || { echo "bench-smoke: raw consumer: $consumed" >&2; exit 1; }
echo "bench-smoke: raw rabbitmq-c publisher: $(echo "$published" | jq -r '"\(.messages) messages confirmed at \(.per_second|floor)/s"'), consumer: $(echo "$consumed" | jq -r '"\(.messages) at \(.per_second|floor)/s"')"
