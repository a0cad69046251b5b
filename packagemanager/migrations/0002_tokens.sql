-- Package Manager's own upload tokens (`atrium pm create token`), scoped to
-- sources like rspm's: sent as basic auth __token__:TOKEN by twine. Only the
-- SHA-256 of a token is stored; tokens are long random strings.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('sources:write')),
    sources     TEXT NOT NULL DEFAULT '', -- comma-separated names; '' = every source
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
