-- Times are Unix milliseconds in BIGINT: the same on both dialects and
-- independent of the server's or session's time zone.

-- Signed-in browser sessions. The cookie holds a random token; only its
-- SHA-256 is stored, so a copy of the database cannot be replayed as cookies.
CREATE TABLE auth_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    sid        TEXT NOT NULL,   -- the provider's sign-in session ("sid" claim), '' if none
    id_token   TEXT NOT NULL,   -- sent back as id_token_hint when signing out
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_sessions_user_id ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expires_at ON auth_sessions (expires_at);

-- Sign-ins started but not finished: what the callback needs to check the
-- provider's answer. Each row is used once.
CREATE TABLE auth_logins (
    state      TEXT PRIMARY KEY,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,   -- PKCE code verifier
    next       TEXT NOT NULL,   -- local path to return to
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_logins_expires_at ON auth_logins (expires_at);
