-- Failed logins, for throttling per account and per client address across API replicas.
CREATE TABLE login_failures (
  id bigserial PRIMARY KEY,
  account text NOT NULL,
  client_address text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_account_idx ON login_failures (account, failed_at);
CREATE INDEX login_failures_address_idx ON login_failures (client_address, failed_at);
