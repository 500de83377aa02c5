-- DELETE /api/v1/users/{id} closes an account: it can no longer sign in and disappears from
-- the user API, while its orders and payments keep referring to it. (PUT is_active=false is
-- the reversible suspension.) The email stays taken.
ALTER TABLE users ADD COLUMN closed_at timestamptz;
