-- pgbench: the floor of a leaner saga that keeps every guarantee and the four roles
-- (`make bench` (a'')). It is not Emporium's code: it is scripts/bench/saga_tx.sql without the
-- four hops a saga with fewer events could drop, to measure what dropping them could buy on
-- this machine before anyone rebuilds the saga for it.
--
-- Kept, statement for statement: the cart refill, the placement with its outbox row, the
-- stock reservation, the charge (with the fake provider's ledger), the confirmation and the
-- customer's email, each with its inbox row, its outbox row and its after-publish mark. So
-- the order and its event commit together, every effect commits with its inbox row, stock
-- is taken under the products' locks with the conditional update, the charge keeps its
-- idempotency key, and each role (stock, payment, order, notification) has its own
-- transaction.
-- Dropped (what a leaner saga would change):
--   - the order worker's stock.reserved hop: the payment worker charges on stock.reserved
--     itself, and the order goes from PENDING straight to CONFIRMED (no AWAITING_PAYMENT);
--   - the notification worker's order.placed and payment.succeeded hops: merchant webhooks
--     are queued only when an endpoint is registered (none is here);
--   - the stock worker's order.confirmed hop: a reservation counts as sold once its order is
--     confirmed, instead of being marked so.
-- The setup and the ids are saga_tx.sql's (bench.py runs both on the same database).
\set n random(1, 281474976710655)
\set p1 random(1, 33)
\set p2 random(34, 66)
\set p3 random(67, 100)

-- The bench refills the customer's cart before each order (Emporium's bench does it in SQL).
BEGIN;
DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid AND updated_at < now() - make_interval(secs => 3600));
INSERT INTO carts (id, user_id) VALUES (('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid, ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid)
  ON CONFLICT (user_id) DO UPDATE SET updated_at = now() RETURNING id;
INSERT INTO cart_items (id, cart_id, product_id, quantity, unit_price_cents, currency)
  SELECT gen_random_uuid(), ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid, p.id, 1, p.price_cents, p.currency FROM products p
  WHERE p.id = ANY(ARRAY[('00000000-0000-4000-0008-' || lpad(to_hex(:p1::int8), 12, '0'))::uuid, ('00000000-0000-4000-0008-' || lpad(to_hex(:p2::int8), 12, '0'))::uuid,
                         ('00000000-0000-4000-0008-' || lpad(to_hex(:p3::int8), 12, '0'))::uuid])
  ON CONFLICT (cart_id, product_id) DO NOTHING;
END;

-- 1. Placement (API): the idempotency key, the cart, the order and its lines, history and
--    event, the key's stored answer.
BEGIN;
SELECT pg_try_advisory_xact_lock(hashtext('orders' || ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))), hashtext('key-' || :n)) AS locked,
       k.request_hash, k.status, k.response_status, k.response_body::text AS body, k.expires_at < now() AS expired,
       k.created_at < now() - make_interval(secs => 60) AS abandoned
  FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.user_id = ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid AND k.key = 'key-' || :n;
DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid AND updated_at < now() - make_interval(secs => 3600));
INSERT INTO carts (id, user_id) VALUES (('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid, ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid)
  ON CONFLICT (user_id) DO UPDATE SET updated_at = now() RETURNING id;
SELECT id FROM carts WHERE id = ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid FOR NO KEY UPDATE;
SELECT ci.product_id, p.name, p.sku, ci.quantity, ci.unit_price_cents AS captured_cents, p.price_cents AS current_cents, p.currency, p.is_active
  FROM cart_items ci JOIN products p ON p.id = ci.product_id WHERE ci.cart_id = ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid ORDER BY ci.product_id;
INSERT INTO orders (id, order_number, user_id, status, payment_method, shipping_address, subtotal_cents, tax_cents, shipping_cents, total_cents, currency, trace_parent)
  VALUES (('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 'SAGA-' || :n, ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid,
          'PENDING', 'tok_visa', '{"line1": "1 Bench Street", "city": "Berlin", "postal_code": "10115", "country": "DE"}', 3000, 570, 0, 3570, 'EUR',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
  ON CONFLICT (order_number) DO NOTHING RETURNING created_at;
INSERT INTO order_items (id, order_id, product_id, product_name, sku, quantity, unit_price_cents, currency)
  SELECT gen_random_uuid(), ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, p.id, p.name, p.sku, 1, p.price_cents, 'EUR' FROM products p
  WHERE p.id = ANY(ARRAY[('00000000-0000-4000-0008-' || lpad(to_hex(:p1::int8), 12, '0'))::uuid, ('00000000-0000-4000-0008-' || lpad(to_hex(:p2::int8), 12, '0'))::uuid,
                         ('00000000-0000-4000-0008-' || lpad(to_hex(:p3::int8), 12, '0'))::uuid]);
INSERT INTO order_status_history (order_id, from_status, to_status) VALUES (('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, NULL, 'PENDING');
DELETE FROM cart_items WHERE cart_id = ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid;
INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
  VALUES (('00000000-0000-4000-0011-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 'order.placed', 'emporium.events', 'order.placed', ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid,
          '{"id": "3f1c2d4e-0000-4000-8000-000000000001", "type": "order.placed", "occurred_at": "2026-12-01T00:00:00Z", "order_id": "3f1c2d4e-0000-4000-8000-000000000001", "payload": {"order_id": "3f1c2d4e-0000-4000-8000-000000000001", "user_id": "3f1c2d4e-0000-4000-8000-000000000002", "total_cents": 3570, "currency": "EUR", "payment_method": "tok_visa", "lines": [{"product_id": "3f1c2d4e-0000-4000-8000-000000000003", "quantity": 1}, {"product_id": "3f1c2d4e-0000-4000-8000-000000000004", "quantity": 1}, {"product_id": "3f1c2d4e-0000-4000-8000-000000000005", "quantity": 1}]}}',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', clock_timestamp());
INSERT INTO idempotency_keys (user_id, key, request_hash, status, response_status, response_body, expires_at)
  VALUES (('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid, 'key-' || :n, 'hash', 'COMPLETED', 201,
          '{"id": "3f1c2d4e-0000-4000-8000-000000000001", "status": "PENDING", "total_cents": 3570}', now() + interval '24 hours')
  RETURNING response_body::text AS body;
END;
-- After the commit, the event is published and its outbox row marked (once per event).
UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(ARRAY[('00000000-0000-4000-0011-' || lpad(to_hex(:n::int8), 12, '0'))::uuid]) AND published_at IS NULL;

-- 2. Stock worker, order.placed: reserve under the products' locks.
BEGIN;
INSERT INTO inbox (consumer, message_id, handled_by) VALUES ('stock', gen_random_uuid(), 'stock-1') ON CONFLICT DO NOTHING;
SELECT status FROM orders WHERE id = ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid FOR NO KEY UPDATE;
SELECT count(*) AS n FROM stock_reservations WHERE order_id = ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid AND status = 'RESERVED';
SELECT id, stock FROM products WHERE id = ANY(ARRAY[('00000000-0000-4000-0008-' || lpad(to_hex(:p1::int8), 12, '0'))::uuid, ('00000000-0000-4000-0008-' || lpad(to_hex(:p2::int8), 12, '0'))::uuid,
                                             ('00000000-0000-4000-0008-' || lpad(to_hex(:p3::int8), 12, '0'))::uuid]) ORDER BY id FOR NO KEY UPDATE;
UPDATE products p SET stock = p.stock - 1, version = p.version + 1, updated_at = now()
  WHERE p.id = ANY(ARRAY[('00000000-0000-4000-0008-' || lpad(to_hex(:p1::int8), 12, '0'))::uuid, ('00000000-0000-4000-0008-' || lpad(to_hex(:p2::int8), 12, '0'))::uuid,
                         ('00000000-0000-4000-0008-' || lpad(to_hex(:p3::int8), 12, '0'))::uuid]) AND p.stock >= 1;
INSERT INTO stock_reservations (id, order_id, product_id, quantity, status)
  SELECT gen_random_uuid(), ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, product_id, 1, 'RESERVED'
  FROM unnest(ARRAY[('00000000-0000-4000-0008-' || lpad(to_hex(:p1::int8), 12, '0'))::uuid, ('00000000-0000-4000-0008-' || lpad(to_hex(:p2::int8), 12, '0'))::uuid,
                    ('00000000-0000-4000-0008-' || lpad(to_hex(:p3::int8), 12, '0'))::uuid]) AS l(product_id);
INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
  VALUES (('00000000-0000-4000-0012-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 'stock.reserved', 'emporium.events', 'stock.reserved', ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid,
          '{"id": "3f1c2d4e-0000-4000-8000-000000000011", "type": "stock.reserved", "occurred_at": "2026-12-01T00:00:00Z", "order_id": "3f1c2d4e-0000-4000-8000-000000000001", "payload": {"order_id": "3f1c2d4e-0000-4000-8000-000000000001"}}',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', clock_timestamp());
END;
UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(ARRAY[('00000000-0000-4000-0012-' || lpad(to_hex(:n::int8), 12, '0'))::uuid]) AND published_at IS NULL;

-- 3. Payment worker, stock.reserved: the payment row, the (fake) provider's ledger in
--    statements of its own, the outcome and payment.succeeded.
BEGIN;
INSERT INTO inbox (consumer, message_id, handled_by) VALUES ('payment', gen_random_uuid(), 'payment-1') ON CONFLICT DO NOTHING;
INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider)
  VALUES (('00000000-0000-4000-0002-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid,
          ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid, 3570, 'EUR', 'tok_visa', 'PENDING', 'fake') ON CONFLICT (id) DO NOTHING;
SELECT id, status, method, failure_reason, amount_cents, currency, provider_reference, refunded_cents FROM payments
  WHERE id = ('00000000-0000-4000-0002-' || lpad(to_hex(:n::int8), 12, '0'))::uuid FOR UPDATE;
SELECT user_id, status, total_cents, currency, payment_method, extract(epoch FROM now() - created_at)::float8 AS age_seconds,
       EXISTS (SELECT 1 FROM order_status_history h WHERE h.order_id = o.id AND h.to_status = 'AWAITING_PAYMENT') AS reached_payment
  FROM orders o WHERE id = ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid;
SELECT active FROM fake_provider_outage WHERE id = 1;
SELECT id, outcome, decline_code FROM fake_provider_operations WHERE idempotency_key = 'pay-' || :n AND ('charge'::text IS NULL OR kind = 'charge');
INSERT INTO fake_provider_operations (id, idempotency_key, kind, order_id, amount_cents, currency, payment_method, outcome, decline_code)
  VALUES (gen_random_uuid(), 'pay-' || :n, 'charge', ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 3570, 'EUR', 'tok_visa', 'succeeded', NULL)
  ON CONFLICT (idempotency_key) DO NOTHING;
UPDATE payments SET status = 'SUCCEEDED', provider_reference = 'fake_' || :n, failure_reason = NULL, updated_at = now() WHERE id = ('00000000-0000-4000-0002-' || lpad(to_hex(:n::int8), 12, '0'))::uuid;
INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
  VALUES (('00000000-0000-4000-0014-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 'payment.succeeded', 'emporium.events', 'payment.succeeded', ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid,
          '{"id": "3f1c2d4e-0000-4000-8000-000000000031", "type": "payment.succeeded", "occurred_at": "2026-12-01T00:00:00Z", "order_id": "3f1c2d4e-0000-4000-8000-000000000001", "payload": {"order_id": "3f1c2d4e-0000-4000-8000-000000000001", "payment_id": "3f1c2d4e-0000-4000-8000-000000000006", "amount_cents": 3570, "currency": "EUR"}}',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', clock_timestamp());
END;
UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(ARRAY[('00000000-0000-4000-0014-' || lpad(to_hex(:n::int8), 12, '0'))::uuid]) AND published_at IS NULL;

-- 4. Order worker, payment.succeeded: PENDING -> CONFIRMED, order.confirmed.
BEGIN;
INSERT INTO inbox (consumer, message_id, handled_by) VALUES ('order', gen_random_uuid(), 'order-1') ON CONFLICT DO NOTHING;
WITH previous AS (SELECT id, status FROM orders WHERE id = ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid FOR NO KEY UPDATE)
  UPDATE orders o SET status = 'CONFIRMED', cancellation_reason = NULL, updated_at = now() FROM previous
  WHERE o.id = previous.id AND previous.status = ANY(ARRAY['PENDING'])
  RETURNING o.user_id, o.total_cents, o.currency, o.payment_method, previous.status AS from_status, extract(epoch FROM now() - o.created_at)::float8 AS age_seconds;
INSERT INTO order_status_history (order_id, from_status, to_status, reason) VALUES (('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 'PENDING', 'CONFIRMED', NULL);
INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent, created_at)
  VALUES (('00000000-0000-4000-0015-' || lpad(to_hex(:n::int8), 12, '0'))::uuid, 'order.confirmed', 'emporium.events', 'order.confirmed', ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid,
          '{"id": "3f1c2d4e-0000-4000-8000-000000000041", "type": "order.confirmed", "occurred_at": "2026-12-01T00:00:00Z", "order_id": "3f1c2d4e-0000-4000-8000-000000000001", "payload": {"order_id": "3f1c2d4e-0000-4000-8000-000000000001", "user_id": "3f1c2d4e-0000-4000-8000-000000000002"}}',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', clock_timestamp());
END;
UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(ARRAY[('00000000-0000-4000-0015-' || lpad(to_hex(:n::int8), 12, '0'))::uuid]) AND published_at IS NULL;

-- 5. Notification worker, order.confirmed: the customer's email, recorded once.
BEGIN;
INSERT INTO inbox (consumer, message_id, handled_by) VALUES ('notification', gen_random_uuid(), 'notification-1') ON CONFLICT DO NOTHING;
SELECT o.user_id, o.order_number, o.total_cents, o.currency, u.email, u.first_name FROM orders o JOIN users u ON u.id = o.user_id
  WHERE o.id = ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid;
SELECT id, event_types FROM webhook_endpoints WHERE enabled;
INSERT INTO notifications (id, user_id, order_id, event_id, channel, template, recipient, body, status, sent_at)
  VALUES (gen_random_uuid(), ('00000000-0000-4000-0009-' || lpad(to_hex(:client_id::int8), 12, '0'))::uuid, ('00000000-0000-4000-0001-' || lpad(to_hex(:n::int8), 12, '0'))::uuid,
          gen_random_uuid(), 'email', 'order_confirmed', 'saga@emporium.local',
          'Hello Saga, your order SAGA is confirmed: 35.70 EUR. Thank you for shopping with Emporium.', 'SENT', now())
  ON CONFLICT (event_id, channel) DO NOTHING;
END;
