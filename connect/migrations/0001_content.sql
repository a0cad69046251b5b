-- Connect's content, its uploaded bundles and the tasks that deploy them.
-- Times are Unix milliseconds (UTC); ids are TEXT except bundle ids, which
-- clients show to people and Connect numbers, allocated from id_counters.

CREATE TABLE id_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO id_counters (name, value) VALUES ('bundle', 0);

CREATE TABLE content (
    guid             TEXT PRIMARY KEY,
    -- Unique per owner, as in Posit Connect.
    name             TEXT NOT NULL,
    title            TEXT NOT NULL DEFAULT '',
    description      TEXT NOT NULL DEFAULT '',
    owner_id         TEXT NOT NULL,
    app_mode         TEXT NOT NULL DEFAULT 'unknown',
    access_type      TEXT NOT NULL DEFAULT 'acl',
    vanity_path      TEXT UNIQUE,
    -- The bundle visitors see; NULL until a deploy succeeds.
    active_bundle_id BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE bundles (
    id           BIGINT PRIMARY KEY,
    content_guid TEXT NOT NULL REFERENCES content (guid) ON DELETE CASCADE,
    -- The uploaded archive in the product's blob store ("sha256:…").
    digest       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    archive_md5  TEXT NOT NULL,
    app_mode     TEXT NOT NULL,
    -- manifest.json as uploaded.
    manifest     TEXT NOT NULL,
    -- The multipart upload's metadata (git source), JSON; '{}' without.
    metadata     TEXT NOT NULL DEFAULT '{}',
    owner_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX bundles_content_guid ON bundles (content_guid);

CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    content_guid TEXT,
    kind         TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    -- running | succeeded | failed
    status       TEXT NOT NULL,
    code         BIGINT NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    -- JSON {"type":…,"data":…}, or '' for none.
    result       TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX tasks_content_guid ON tasks (content_guid);

-- A task's log, append-only: line seq (0, 1, …) of the task's output.
CREATE TABLE task_output (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
