-- Guarantees over time: parked outbox rows, idempotency claims that belong to their request,
-- the saga reconciler's bookkeeping, and the indexes the background retention needs.

-- An outbox row the broker keeps refusing (or that cannot be decoded) is parked: kept for an
-- operator (`emporium outbox parked` / `retry`), skipped by the relay.
ALTER TABLE outbox ADD COLUMN parked_at timestamptz;
DROP INDEX outbox_unpublished_idx;
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked_idx ON outbox (parked_at) WHERE published_at IS NULL AND parked_at IS NOT NULL;
-- The reconciler leaves an order alone while one of its events still waits in the outbox.
CREATE INDEX outbox_order_unpublished_idx ON outbox (order_id) WHERE published_at IS NULL;
-- Retention deletes published rows by age.
CREATE INDEX outbox_created_idx ON outbox (created_at);
CREATE INDEX inbox_processed_idx ON inbox (processed_at);

-- Each claim of an Idempotency-Key carries a token: only the request holding it may
-- complete or release the key, so a slow request whose abandoned claim was taken over
-- cannot overwrite its successor's.
ALTER TABLE idempotency_keys ADD COLUMN claim_token uuid;
CREATE INDEX idempotency_keys_in_flight_idx ON idempotency_keys (created_at) WHERE status = 'IN_FLIGHT';

CREATE INDEX login_failures_failed_idx ON login_failures (failed_at);
CREATE INDEX refresh_tokens_expiry_idx ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_revoked_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- The saga reconciler's record of the orders it re-drove: how often and when last, so a
-- stalled order is re-driven with growing spacing and, past the limit, left to an operator.
CREATE TABLE saga_redrives (
  order_id uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
  redrives int4 NOT NULL DEFAULT 0,
  last_step text NOT NULL,
  last_redriven_at timestamptz NOT NULL DEFAULT now()
);
-- Reservations not yet committed or released: the reconciler's look-up for settled orders
-- whose commit or release never happened (a small set: in-flight orders only).
CREATE INDEX stock_reservations_reserved_idx ON stock_reservations (order_id) WHERE status = 'RESERVED';
