-- The installation log: every organization checkpoint, in the order they were
-- appended to it (`installation_idx`), its tree and its own signed checkpoints. One
-- server at a time extends it (`installation_lock`).
ALTER TABLE checkpoints ADD COLUMN installation_idx BIGINT;
CREATE UNIQUE INDEX checkpoints_installation ON checkpoints(installation_idx) WHERE installation_idx IS NOT NULL;
CREATE INDEX checkpoints_not_installed ON checkpoints(created_at) WHERE installation_idx IS NULL;
CREATE TABLE installation_nodes (
    level INT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE installation_checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE installation_lock (id INT PRIMARY KEY);
INSERT INTO installation_lock (id) VALUES (1);
