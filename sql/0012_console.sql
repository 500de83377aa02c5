-- The operator console: server-side sessions (revocable, with idle and absolute expiry; the
-- cookie carries a random token whose SHA-256 is stored here, never the token itself) and
-- the audit log of every change an operator makes.
CREATE TABLE console_sessions (
  token_hash text PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The CSRF token every form of this session carries (synchroniser token pattern).
  csrf_token text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  actor_id uuid NOT NULL REFERENCES users (id),
  -- What was done (`order.ship`, `user.suspend`, `dlq.replay`, ...) to which object.
  action text NOT NULL,
  object_type text NOT NULL,
  object_id text NOT NULL,
  before jsonb,
  after jsonb,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, at);
