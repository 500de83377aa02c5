-- Core schema: accounts, catalog, carts, orders, stock, payments, notifications and the
-- messaging tables (outbox, inbox, idempotency keys). Money is integer minor units plus an
-- ISO 4217 currency code. Runs inside the migrator's transaction: no BEGIN/COMMIT here.

CREATE TABLE users (
  id uuid PRIMARY KEY,
  email text NOT NULL,
  password_hash text NOT NULL,
  first_name text NOT NULL,
  last_name text NOT NULL,
  role text NOT NULL DEFAULT 'CUSTOMER' CHECK (role IN ('CUSTOMER', 'SELLER', 'ADMIN', 'SUPERADMIN')),
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  token_hash text NOT NULL UNIQUE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE addresses (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  line1 text NOT NULL,
  line2 text,
  city text NOT NULL,
  postal_code text NOT NULL,
  country char(2) NOT NULL,
  is_default boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user_idx ON addresses (user_id);

CREATE TABLE categories (
  id uuid PRIMARY KEY,
  parent_id uuid REFERENCES categories (id) ON DELETE RESTRICT,
  name text NOT NULL,
  slug text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
  id uuid PRIMARY KEY,
  seller_id uuid REFERENCES users (id),
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  price_cents int8 NOT NULL CHECK (price_cents >= 0),
  currency char(3) NOT NULL,
  stock int8 NOT NULL CHECK (stock >= 0),
  is_active boolean NOT NULL DEFAULT true,
  version int8 NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE product_categories (
  product_id uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
  category_id uuid NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
  PRIMARY KEY (product_id, category_id)
);

CREATE TABLE reviews (
  id uuid PRIMARY KEY,
  product_id uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  rating int2 NOT NULL CHECK (rating BETWEEN 1 AND 5),
  body text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT reviews_one_per_customer UNIQUE (product_id, user_id)
);

CREATE TABLE carts (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
  id uuid PRIMARY KEY,
  cart_id uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
  product_id uuid NOT NULL REFERENCES products (id),
  quantity int4 NOT NULL CHECK (quantity > 0),
  unit_price_cents int8 NOT NULL CHECK (unit_price_cents >= 0),
  currency char(3) NOT NULL,
  CONSTRAINT cart_items_one_line_per_product UNIQUE (cart_id, product_id)
);

CREATE TABLE orders (
  id uuid PRIMARY KEY,
  order_number text NOT NULL UNIQUE,
  user_id uuid NOT NULL REFERENCES users (id),
  status text NOT NULL CHECK (status IN ('PENDING', 'AWAITING_PAYMENT', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
  cancellation_reason text CHECK (cancellation_reason IN ('out_of_stock', 'payment_failed', 'customer', 'expired')),
  payment_method text NOT NULL,
  shipping_address jsonb NOT NULL,
  subtotal_cents int8 NOT NULL CHECK (subtotal_cents >= 0),
  tax_cents int8 NOT NULL DEFAULT 0 CHECK (tax_cents >= 0),
  shipping_cents int8 NOT NULL DEFAULT 0 CHECK (shipping_cents >= 0),
  total_cents int8 NOT NULL CHECK (total_cents >= 0),
  currency char(3) NOT NULL,
  trace_parent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC);
CREATE INDEX orders_status_updated_idx ON orders (status, updated_at);

CREATE TABLE order_status_history (
  id bigserial PRIMARY KEY,
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  from_status text,
  to_status text NOT NULL,
  reason text,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order_idx ON order_status_history (order_id, id);

CREATE TABLE order_items (
  id uuid PRIMARY KEY,
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  product_id uuid NOT NULL REFERENCES products (id),
  product_name text NOT NULL,
  sku text NOT NULL,
  quantity int4 NOT NULL CHECK (quantity > 0),
  unit_price_cents int8 NOT NULL CHECK (unit_price_cents >= 0),
  currency char(3) NOT NULL
);
CREATE INDEX order_items_order_idx ON order_items (order_id);

CREATE TABLE stock_reservations (
  id uuid PRIMARY KEY,
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  product_id uuid NOT NULL REFERENCES products (id),
  quantity int4 NOT NULL CHECK (quantity > 0),
  status text NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT stock_reservations_one_per_line UNIQUE (order_id, product_id)
);

CREATE TABLE payments (
  id uuid PRIMARY KEY,
  order_id uuid NOT NULL REFERENCES orders (id),
  user_id uuid NOT NULL REFERENCES users (id),
  amount_cents int8 NOT NULL CHECK (amount_cents >= 0),
  currency char(3) NOT NULL,
  method text NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'REFUNDED')),
  provider text NOT NULL,
  provider_reference text,
  failure_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX payments_one_per_order ON payments (order_id);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);

CREATE TABLE refunds (
  id uuid PRIMARY KEY,
  payment_id uuid NOT NULL REFERENCES payments (id),
  amount_cents int8 NOT NULL CHECK (amount_cents > 0),
  currency char(3) NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
  provider_reference text,
  reason text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refunds_one_per_payment ON refunds (payment_id);

CREATE TABLE notifications (
  id uuid PRIMARY KEY,
  user_id uuid REFERENCES users (id),
  order_id uuid REFERENCES orders (id),
  event_id uuid NOT NULL,
  channel text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
  template text NOT NULL,
  recipient text NOT NULL,
  body text NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  CONSTRAINT notifications_once_per_event UNIQUE (event_id, channel)
);

-- Transactional outbox: written with the business rows, published after commit, marked
-- only after the broker confirmed. The partial index keeps the relay's scan small.
CREATE TABLE outbox (
  id uuid PRIMARY KEY,
  event_type text NOT NULL,
  exchange text NOT NULL,
  routing_key text NOT NULL,
  order_id uuid,
  payload jsonb NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}',
  trace_parent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  attempts int4 NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

-- Inbox: one row per (consumer, message) written in the consumer's transaction, so a
-- redelivered message is recognised and skipped.
CREATE TABLE inbox (
  consumer text NOT NULL,
  message_id uuid NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, message_id)
);

-- API idempotency: keys scoped per user, the request's hash, and the stored response.
CREATE TABLE idempotency_keys (
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key text NOT NULL,
  request_hash text NOT NULL,
  status text NOT NULL CHECK (status IN ('IN_FLIGHT', 'COMPLETED')),
  response_status int4,
  response_body jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
