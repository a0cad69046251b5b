-- The suite's user directory. Times are Unix milliseconds (UTC) so both
-- dialects store and compare them the same way, whatever the session's
-- time zone.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'publisher', 'admin')),
    locked        BOOLEAN NOT NULL DEFAULT FALSE,
    -- Set for users that came from an external OpenID provider; NULLs are
    -- distinct in UNIQUE, so local users never collide.
    issuer        TEXT,
    subject       TEXT,
    -- bcrypt; NULL means the user cannot sign in with a password.
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (issuer, subject)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    product      TEXT NOT NULL DEFAULT '',
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE sign_ins (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX sign_ins_user_id ON sign_ins (user_id);
CREATE INDEX sign_ins_expires_at ON sign_ins (expires_at);
