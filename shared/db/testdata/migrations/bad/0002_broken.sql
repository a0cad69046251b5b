-- Creates a table and a row, then fails: none of it may survive.
CREATE TABLE half_done (id INTEGER PRIMARY KEY);
INSERT INTO half_done (id) VALUES (1);
INSERT INTO no_such_table (id) VALUES (1);
