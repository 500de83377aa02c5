-- pgbench: the transaction equivalent to placing an order (the `make bench` baseline):
-- the order, its three lines and its outbox event, in one transaction, statement by statement
-- as the API sends them (run with -M extended, like libpq's PQexecParams).
-- Variables from -D: user_id, p1, p2, p3 (existing rows; see scripts/bench/bench.py).
\set price random(100, 10000)
BEGIN;
INSERT INTO orders (id, order_number, user_id, status, payment_method, shipping_address, subtotal_cents, tax_cents, shipping_cents, total_cents, currency, trace_parent)
  VALUES (gen_random_uuid(), 'PGB-' || gen_random_uuid(), :user_id, 'PENDING', 'tok_visa',
          '{"line1": "1 Bench Street", "city": "Berlin", "postal_code": "10115", "country": "DE"}', 3 * :price, 0, 0, 3 * :price, 'EUR',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
  RETURNING id AS order_id \gset
INSERT INTO order_items (id, order_id, product_id, product_name, sku, quantity, unit_price_cents, currency)
  VALUES (gen_random_uuid(), :order_id, :p1, 'Bench item 1', 'PGB-1', 1, :price, 'EUR');
INSERT INTO order_items (id, order_id, product_id, product_name, sku, quantity, unit_price_cents, currency)
  VALUES (gen_random_uuid(), :order_id, :p2, 'Bench item 2', 'PGB-2', 1, :price, 'EUR');
INSERT INTO order_items (id, order_id, product_id, product_name, sku, quantity, unit_price_cents, currency)
  VALUES (gen_random_uuid(), :order_id, :p3, 'Bench item 3', 'PGB-3', 1, :price, 'EUR');
INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, trace_parent)
  VALUES (gen_random_uuid(), 'order.placed', 'emporium.events', 'order.placed', :order_id,
          '{"order_id": "00000000-0000-0000-0000-000000000000", "user_id": "00000000-0000-0000-0000-000000000000", "total_cents": 3000, "currency": "EUR", "payment_method": "tok_visa", "lines": [{"product_id": "00000000-0000-0000-0000-000000000001", "quantity": 1}, {"product_id": "00000000-0000-0000-0000-000000000002", "quantity": 1}, {"product_id": "00000000-0000-0000-0000-000000000003", "quantity": 1}]}',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
END;
