-- Real payment providers and partial refunds.
--
-- A card payment can be authorised and captured later (PAYMENT_CAPTURE=manual): AUTHORIZED
-- until the order ships, VOIDED when the authorisation is released (cancelled before
-- shipping, or expired). Several refunds per payment, each of an amount or of order lines,
-- up to what was captured.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
  CHECK (status IN ('PENDING', 'AUTHORIZED', 'SUCCEEDED', 'FAILED', 'VOIDED', 'PARTIALLY_REFUNDED', 'REFUNDED'));
-- What was refunded so far, kept with the payment so the "no more than captured" rule is one
-- locked row's check.
ALTER TABLE payments ADD COLUMN refunded_cents int8 NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents);
UPDATE payments p SET refunded_cents = r.amount_cents FROM refunds r WHERE r.payment_id = p.id AND r.status = 'SUCCEEDED';

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
  CHECK (status IN ('PENDING', 'AWAITING_PAYMENT', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'PARTIALLY_REFUNDED', 'REFUNDED'));
-- Something about the order's money needs an admin: 'disputed' (the customer disputed the
-- charge with their bank), 'charge_missing' (confirmed, but the provider holds no charge),
-- 'authorization_expired' (shipped, but the authorisation could not be captured).
ALTER TABLE orders ADD COLUMN payment_flag text CHECK (payment_flag IN ('disputed', 'charge_missing', 'authorization_expired'));
CREATE INDEX orders_payment_flag_idx ON orders (payment_flag) WHERE payment_flag IS NOT NULL;

DROP INDEX refunds_one_per_payment;
CREATE INDEX refunds_payment_idx ON refunds (payment_id);
ALTER TABLE refunds ADD COLUMN order_id uuid REFERENCES orders (id);
UPDATE refunds r SET order_id = p.order_id FROM payments p WHERE p.id = r.payment_id;
-- Whether the refunded lines go back to stock (done once, by the stock worker).
ALTER TABLE refunds ADD COLUMN restock boolean NOT NULL DEFAULT false;
ALTER TABLE refunds ADD COLUMN restocked_at timestamptz;
-- Who asked: an admin's user id; NULL for refunds Emporium made itself (a cancelled order's
-- charge) or found at the provider (reconciliation).
ALTER TABLE refunds ADD COLUMN requested_by uuid REFERENCES users (id);
ALTER TABLE refunds ADD COLUMN failure_reason text;
ALTER TABLE refunds ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
-- A provider refund is recorded once, however it was learnt of (our call, a webhook, the reconciler).
CREATE UNIQUE INDEX refunds_provider_reference_idx ON refunds (provider_reference) WHERE provider_reference IS NOT NULL;

-- The lines (and quantities) a refund covers, when it was asked for by line.
CREATE TABLE refund_lines (
  refund_id uuid NOT NULL REFERENCES refunds (id) ON DELETE CASCADE,
  product_id uuid NOT NULL REFERENCES products (id),
  quantity int4 NOT NULL CHECK (quantity > 0),
  amount_cents int8 NOT NULL CHECK (amount_cents >= 0),
  PRIMARY KEY (refund_id, product_id)
);

-- The provider-side objects a provider adapter created, by the idempotency key it created
-- them under: written outside the worker's transaction, before the object can move money, so
-- a worker that dies after the provider acted finds the object again instead of acting twice.
CREATE TABLE provider_objects (
  idempotency_key text PRIMARY KEY,
  provider text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('payment_intent', 'refund')),
  object_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
