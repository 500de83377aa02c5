#!/usr/bin/env bash
# The relay's database work to drain an outbox backlog, as after a broker outage: events
# written after the table was last analysed, claimed 200 at a time, oldest first, and marked
# published, one transaction per batch, until none waits. Prints, for the reconciler's index
# as migration 0008 made it and as 0017 narrowed it (BENCHMARKS.md, "outbox marks by primary
# key"), the time of single marks of 50 events and of the whole drain.
#
#   bash scripts/bench/outbox-drain.sh [BACKLOG]   (default 50000 events waiting)
#
# Runs on a scratch database of its own (emporium_outbox_drain, removed at the end), with
# autovacuum off on its outbox so that both indexes meet the same table. Needs a built CLI
# (`swift build`; EMPORIUM_BIN names another) for the migrations; starts the servers if needed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
backlog="${1:-50000}"
if ! [[ "$backlog" =~ ^[0-9]+$ ]] || [ "$backlog" -lt 1000 ]; then
  echo "outbox-drain: BACKLOG must be a whole number of at least 1000, not '$backlog'" >&2
  exit 2
fi
cd "$ROOT"
emporium="${EMPORIUM_BIN:-$(swift build --show-bin-path)/emporium}"
if [ ! -x "$emporium" ]; then
  echo "outbox-drain: no CLI at $emporium; build it first (swift build), or set EMPORIUM_BIN" >&2
  exit 2
fi
bash scripts/services.sh >/dev/null
db=emporium_outbox_drain
admin() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD="$PG_PASSWORD" psql -X -qtA -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -U "$PG_USER" -d postgres "$@"; }
run() { PGPASSWORD="$PG_PASSWORD" psql -X -qtA -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -U "$PG_USER" -d "$db" "$@"; }
work="$(mktemp -d)"
trap 'admin -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
admin -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@/$db?host=$PG_SOCKET_DIR" "$emporium" migrate --dir "$ROOT/sql" >/dev/null

# The mark as OutboxStore.markPublished sends it, and the relay's claim (claimStale).
mark="UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE id = ANY(\$1) AND published_at IS NULL FOR UPDATE SKIP LOCKED)"
claim="SELECT id FROM outbox WHERE published_at IS NULL AND parked_at IS NULL AND created_at < now() - interval '2 seconds' ORDER BY created_at LIMIT 200 FOR UPDATE SKIP LOCKED"
{
  echo "PREPARE mark(uuid[]) AS $mark;"
  for _ in $(seq 1 10); do
    printf '%s\n' '\timing off' \
      "SELECT array_agg(id)::text AS ids FROM (SELECT id FROM outbox WHERE published_at IS NULL ORDER BY random() LIMIT 50) s \\gset" \
      '\timing on' "EXECUTE mark(:'ids');"
  done
} > "$work/marks.sql"
{
  echo "PREPARE mark(uuid[]) AS $mark;"
  for _ in $(seq 1 $(((backlog - 500 + 199) / 200))); do
    printf '%s\n' "BEGIN;" "WITH c AS ($claim) SELECT array_agg(id)::text AS ids FROM c \\gset" "EXECUTE mark(:'ids');" "COMMIT;"
  done
} > "$work/drain.sql"

echo "outbox-drain: $backlog events waiting that the statistics have not seen, behind 300,000 published ones"
for variant in 0008 0017; do
  if [ "$variant" = 0008 ]; then predicate="published_at IS NULL"; else predicate="published_at IS NULL AND order_id IS NOT NULL"; fi
  run -c "ALTER TABLE outbox SET (autovacuum_enabled = off)" -c "TRUNCATE outbox" \
    -c "DROP INDEX outbox_order_unpublished_idx" -c "CREATE INDEX outbox_order_unpublished_idx ON outbox (order_id) WHERE $predicate" \
    -c "INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, created_at, published_at)
        SELECT gen_random_uuid(), 'order.placed', 'emporium.events', 'order.placed', gen_random_uuid(), '{}', now() - interval '2 hours', now()
        FROM generate_series(1, 300000)" \
    -c "VACUUM ANALYZE outbox" \
    -c "INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, created_at)
        SELECT gen_random_uuid(), 'order.placed', 'emporium.events', 'order.placed', gen_random_uuid(), '{}',
               now() - interval '1 hour' + make_interval(secs => i / 1000.0)
        FROM generate_series(1, $backlog) AS i" >/dev/null
  marks="$(run -f "$work/marks.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | tr '\n' ' ')"
  started="$(date +%s.%N)"
  run -f "$work/drain.sql" >/dev/null
  ended="$(date +%s.%N)"
  left="$(run -c "SELECT count(*) FROM outbox WHERE published_at IS NULL")"
  python3 - "$variant" "$predicate" "$marks" "$started" "$ended" "$left" <<'PY'
import statistics, sys
variant, predicate, marks, started, ended, left = sys.argv[1:]
times = [float(t) for t in marks.split()]
print(f"  index as {variant} made it ({predicate}):")
print(f"    one mark of 50: median {statistics.median(times):.1f} ms, {min(times):.1f}-{max(times):.1f} ms over {len(times)}")
print(f"    the drain, 200 a transaction: {float(ended) - float(started):.1f} s; {left} left waiting (the 10 single marks took 500 first)")
PY
done
