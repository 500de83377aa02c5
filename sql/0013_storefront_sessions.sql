-- The storefront's customers sign in with cookie sessions too: console_sessions holds the
-- sessions of both faces, and a session of one is never accepted by the other.
ALTER TABLE console_sessions ADD COLUMN scope text NOT NULL DEFAULT 'console' CHECK (scope IN ('console', 'shop'));
