-- What posit-sdk manages besides content and bundles: environment
-- variables, groups, content permissions, tags and vanity URLs.
-- User ids are the suite directory's (shared/accounts); times are Unix
-- milliseconds (UTC). Permission and tag ids are numbers, as in Posit
-- Connect, allocated from id_counters and sent to clients as strings.

-- A content item's environment variables. Values are write-only through
-- the API; the runtime reads them to start the content's processes.
CREATE TABLE content_env (
    content_guid TEXT NOT NULL REFERENCES content (guid) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (content_guid, name)
);

CREATE TABLE connect_groups (
    guid       TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    owner_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_guid TEXT NOT NULL REFERENCES connect_groups (guid) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_guid, user_id)
);
CREATE INDEX group_members_user_id ON group_members (user_id);

INSERT INTO id_counters (name, value) VALUES ('permission', 0);
INSERT INTO id_counters (name, value) VALUES ('tag', 0);

-- Who besides the owner (and admins) may see or manage a content item:
-- a user or a group, as a viewer or as an owner (a collaborator).
CREATE TABLE content_permissions (
    id             BIGINT PRIMARY KEY,
    content_guid   TEXT NOT NULL REFERENCES content (guid) ON DELETE CASCADE,
    -- user | group
    principal_type TEXT NOT NULL,
    principal_guid TEXT NOT NULL,
    -- viewer | owner
    role           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (content_guid, principal_type, principal_guid)
);
CREATE INDEX content_permissions_principal ON content_permissions (principal_guid);

-- Tags form a tree; parent_id 0 is the top level (not NULL, so that the
-- name is unique among siblings on both dialects).
CREATE TABLE tags (
    id         BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    parent_id  BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (parent_id, name)
);

CREATE TABLE content_tags (
    content_guid TEXT NOT NULL REFERENCES content (guid) ON DELETE CASCADE,
    tag_id       BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (content_guid, tag_id)
);
CREATE INDEX content_tags_tag_id ON content_tags (tag_id);

-- content.vanity_path (0001) is the path; this is when it was set.
ALTER TABLE content ADD COLUMN vanity_created_at BIGINT;
