-- Security hardening: access tokens that follow the account, sign-out everywhere, refresh
-- families with an absolute lifetime, and sign-in throttling per (account, address).

-- Access tokens issued before this instant are refused: set by "sign out everywhere".
ALTER TABLE users ADD COLUMN tokens_valid_after timestamptz;

-- When a refresh-token family began (its first sign-in), carried across rotations, so a
-- family ends after REFRESH_FAMILY_MAX_DAYS however often it is refreshed.
ALTER TABLE refresh_tokens ADD COLUMN family_started_at timestamptz NOT NULL DEFAULT now();
UPDATE refresh_tokens t SET family_started_at = f.started
FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
WHERE f.family_id = t.family_id;

-- Sign-in failures are counted per (account, client address) pair and per address.
CREATE INDEX login_failures_pair_idx ON login_failures (account, client_address, failed_at);
