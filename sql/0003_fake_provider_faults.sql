-- Fault injection for the fake payment provider, used by failure tests and demos: while
-- `outage` is true every call fails as "provider unavailable" (a transient error), and each
-- refused call is recorded with its time.
CREATE TABLE fake_provider_outage (
  id int PRIMARY KEY CHECK (id = 1),
  active boolean NOT NULL DEFAULT false
);
INSERT INTO fake_provider_outage (id, active) VALUES (1, false);

CREATE TABLE fake_provider_refused_calls (
  id bigserial PRIMARY KEY,
  idempotency_key text NOT NULL,
  refused_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
