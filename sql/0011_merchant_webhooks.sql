-- Merchant webhooks: endpoints an admin registers, and one delivery row per (endpoint, event)
-- with its attempts, so a delivery is sent until it succeeds or is given up, and its log is
-- readable through the API and the CLI.
CREATE TABLE webhook_endpoints (
  id uuid PRIMARY KEY,
  url text NOT NULL,
  -- Patterns of event types: `order.*`, `payment.*`, `refund.*` or exact types.
  event_types text[] NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  -- The signing secret (shown once), and while it rotates the previous one until it expires.
  secret text NOT NULL,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  -- Since when every delivery failed (NULL after a success); too long disables the endpoint.
  failing_since timestamptz,
  disabled_reason text,
  created_by uuid REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY,
  endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  -- The event's id (its outbox row's): receivers dedupe on it (`Emporium-Event-Id`).
  event_id uuid NOT NULL,
  event_type text NOT NULL,
  body text NOT NULL,
  -- PENDING (due at next_attempt_at), SENDING (leased by a dispatcher until lease_until),
  -- SUCCEEDED, FAILED (given up: in the notification worker's dead-letter queue).
  status text NOT NULL CHECK (status IN ('PENDING', 'SENDING', 'SUCCEEDED', 'FAILED')),
  attempts int4 NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  response_code int4,
  duration_ms int4,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_deliveries_once_per_event UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status IN ('PENDING', 'SENDING');
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);

-- Admin notices (an endpoint disabled after failing too long) are notifications without a user.
ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'sms', 'webhook', 'admin'));
