CREATE TABLE things (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE flavour (name TEXT NOT NULL);
INSERT INTO flavour (name) VALUES ('sqlite');
