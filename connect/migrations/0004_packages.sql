-- Which Python environment (DATA_DIR/connect/envs/{env_key}) each bundle
-- runs in, recorded whenever the bundle is started (deployed, or started
-- again after a server restart), and the packages installed in each
-- environment, read from its site-packages. Content with the same
-- interpreter and requirements shares one environment, so its packages are
-- kept once per environment. posit-sdk reads them through /v1/packages and
-- /v1/content/{guid}/packages.
CREATE TABLE bundle_environments (
    bundle_id        BIGINT PRIMARY KEY REFERENCES bundles (id) ON DELETE CASCADE,
    content_guid     TEXT NOT NULL REFERENCES content (guid) ON DELETE CASCADE,
    env_key          TEXT NOT NULL,
    -- "python" (Connect's package language).
    language         TEXT NOT NULL,
    -- The interpreter's version, "3.11.7".
    language_version TEXT NOT NULL,
    recorded_at      BIGINT NOT NULL
);
CREATE INDEX bundle_environments_env_key ON bundle_environments (env_key);
CREATE INDEX bundle_environments_content_guid ON bundle_environments (content_guid);

-- Rewritten when the environment is built again (after a runtime cache
-- delete): unpinned requirements may then resolve to newer versions.
CREATE TABLE environment_packages (
    env_key TEXT NOT NULL,
    -- As PEP 503 normalizes it ("Flask" is "flask"): what the API
    -- reports and filters by.
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (env_key, name)
);
