-- Package Manager's model: sources hold packages, repositories subscribe to
-- ordered sources, and every change to a source is a numbered transaction,
-- so a repository can be served as it was at any transaction (a snapshot).
-- Times are Unix milliseconds (UTC).

CREATE TABLE sources (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    -- local-python (uploads), pypi (upstream mirror), local-r (R uploads)
    type         TEXT NOT NULL CHECK (type IN ('local-python', 'pypi', 'local-r')),
    upstream_url TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);

CREATE TABLE repos (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL CHECK (type IN ('python', 'r')),
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    repo_id   TEXT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, source_id)
);

-- The transaction counter: one row, bumped with UPDATE … RETURNING, which
-- both dialects serialise on the row lock.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('txn', 0);

CREATE TABLE transactions (
    id         BIGINT PRIMARY KEY,
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX transactions_created_at ON transactions (created_at);

-- Python distributions. A row is visible in snapshot T when
-- added_txn <= T and (removed_txn IS NULL or removed_txn > T). Files are
-- immutable: one filename per source, whatever its transactions.
CREATE TABLE python_files (
    source_id        TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    project          TEXT NOT NULL, -- normalized name
    display_name     TEXT NOT NULL,
    version          TEXT NOT NULL,
    filename         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    size             BIGINT NOT NULL DEFAULT 0,
    requires_python  TEXT NOT NULL DEFAULT '',
    yanked           BOOLEAN NOT NULL DEFAULT FALSE,
    yanked_reason    TEXT NOT NULL DEFAULT '',
    metadata_sha256  TEXT NOT NULL DEFAULT '', -- '' = no .metadata file
    upload_time      BIGINT NOT NULL,
    -- Storage digests; '' while a mirrored file has not been downloaded.
    blob             TEXT NOT NULL DEFAULT '',
    metadata_blob    TEXT NOT NULL DEFAULT '',
    upstream_url     TEXT NOT NULL DEFAULT '',
    upstream_meta    BOOLEAN NOT NULL DEFAULT FALSE,
    added_txn        BIGINT NOT NULL,
    removed_txn      BIGINT,
    PRIMARY KEY (source_id, filename)
);
CREATE INDEX python_files_project ON python_files (source_id, project);
CREATE INDEX python_files_sha256 ON python_files (sha256);

-- When a mirror source last asked upstream about a project.
CREATE TABLE mirror_projects (
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    project    TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    found      BOOLEAN NOT NULL,
    PRIMARY KEY (source_id, project)
);

-- R source packages.
CREATE TABLE r_packages (
    source_id   TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    package     TEXT NOT NULL,
    version     TEXT NOT NULL,
    filename    TEXT NOT NULL,
    md5         TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    fields      TEXT NOT NULL, -- the PACKAGES entry as JSON
    blob        TEXT NOT NULL,
    added_txn   BIGINT NOT NULL,
    removed_txn BIGINT,
    PRIMARY KEY (source_id, filename)
);
CREATE INDEX r_packages_package ON r_packages (source_id, package);
