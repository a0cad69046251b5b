-- The scheduler's settings of each content item and the processes (jobs)
-- Connect ran for it. A NULL setting means the server's default
-- (connect.min_processes and friends), as in Posit Connect, so changing a
-- default reaches every content item that did not choose its own.
ALTER TABLE content ADD COLUMN min_processes BIGINT;
ALTER TABLE content ADD COLUMN max_processes BIGINT;
ALTER TABLE content ADD COLUMN max_conns_per_process BIGINT;
ALTER TABLE content ADD COLUMN load_factor DOUBLE PRECISION;
-- Seconds.
ALTER TABLE content ADD COLUMN idle_timeout BIGINT;
ALTER TABLE content ADD COLUMN init_timeout BIGINT;

INSERT INTO id_counters (name, value) VALUES ('job', 0);

-- One row per process started for a content item. Its output is a file
-- under the data dir (connect/jobs/{job_key}.log) so that every server
-- sharing the data dir can show it.
CREATE TABLE jobs (
    job_key      TEXT PRIMARY KEY,
    id           BIGINT NOT NULL UNIQUE,
    content_guid TEXT NOT NULL REFERENCES content (guid) ON DELETE CASCADE,
    bundle_id    BIGINT NOT NULL,
    -- run_fastapi_app, run_streamlit, … (posit-sdk's JobTag).
    tag          TEXT NOT NULL,
    hostname     TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    run_as       TEXT NOT NULL,
    -- 0 active, 1 finished (Posit Connect's codes).
    status       BIGINT NOT NULL,
    exit_code    BIGINT,
    start_time   BIGINT NOT NULL,
    end_time     BIGINT
);
CREATE INDEX jobs_content_guid ON jobs (content_guid, start_time);
