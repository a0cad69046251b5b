-- The embedded OpenID provider's state. Users and sign-ins live in the
-- accounts schema; these tables hold only the protocol's short-lived
-- records and the signing keys. Times are Unix milliseconds (UTC).

-- An authorization request from a product, from /authorize until the code
-- is exchanged (then the row is deleted) or it expires.
CREATE TABLE auth_requests (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    state                 TEXT NOT NULL DEFAULT '',
    nonce                 TEXT NOT NULL DEFAULT '',
    scopes                TEXT NOT NULL DEFAULT '',
    response_type         TEXT NOT NULL,
    response_mode         TEXT NOT NULL DEFAULT '',
    prompt                TEXT NOT NULL DEFAULT '',
    max_age               BIGINT,
    login_hint            TEXT NOT NULL DEFAULT '',
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    -- Set when the user has authenticated.
    user_id               TEXT,
    sign_in_id            TEXT,
    auth_time             BIGINT,
    done                  BOOLEAN NOT NULL DEFAULT FALSE,
    -- One code per request: code_issued stays true after the code is used,
    -- so the callback cannot mint a second one.
    code_issued           BOOLEAN NOT NULL DEFAULT FALSE,
    code_hash             TEXT UNIQUE,
    code_expires_at       BIGINT,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

-- Opaque access tokens carry only this row's id (encrypted); the userinfo
-- and introspection endpoints look it up here.
CREATE TABLE access_tokens (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    sign_in_id TEXT NOT NULL,
    scopes     TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

-- RSA signing keys, newest generation signs. private_key is the PKCS #8
-- key sealed with AES-GCM under a key derived from the suite's secret key.
-- generation is unique so that two servers rotating at the same moment
-- cannot both add a key.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    generation  BIGINT NOT NULL UNIQUE,
    algorithm   TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
