-- Items written by the concurrency and transaction tests.
CREATE TABLE items (
    id   TEXT PRIMARY KEY,
    note TEXT NOT NULL DEFAULT ''
);
