-- The fake payment provider's own ledger. It stands for the processor's side: it is written
-- outside the worker's transaction, so it remembers a charge even when the worker crashes
-- before committing — exactly the case idempotency keys exist for.
CREATE TABLE fake_provider_operations (
  id uuid PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('charge', 'refund')),
  order_id uuid,
  amount_cents int8 NOT NULL,
  currency char(3) NOT NULL,
  payment_method text,
  outcome text NOT NULL CHECK (outcome IN ('succeeded', 'declined')),
  decline_code text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fake_provider_operations_order_idx ON fake_provider_operations (order_id);
