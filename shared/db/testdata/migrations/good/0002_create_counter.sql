-- Two statements in one file; the INSERT would fail with a duplicate key if
-- the migration were ever applied twice.
CREATE TABLE counter (
    id INTEGER PRIMARY KEY,
    n  INTEGER NOT NULL
);
INSERT INTO counter (id, n) VALUES (1, 0);
