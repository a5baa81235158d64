-- The installation log: every organization checkpoint, in the order they were
-- appended to it (`installation_idx`), its tree and its own signed checkpoints.
ALTER TABLE checkpoints ADD COLUMN installation_idx INTEGER;
CREATE UNIQUE INDEX checkpoints_installation ON checkpoints(installation_idx) WHERE installation_idx IS NOT NULL;
CREATE INDEX checkpoints_not_installed ON checkpoints(created_at) WHERE installation_idx IS NULL;
CREATE TABLE installation_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE installation_checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
