-- Every complete subtree of each organization's Merkle tree (RFC 9162): level 0 holds
-- the leaf hashes, level l index i the hash of leaves [i * 2^l, (i + 1) * 2^l). Any
-- proof needs O(log n) of them. Kept when retention deletes an event's row.
CREATE TABLE tree_nodes (
    org_id INTEGER NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (org_id, level, idx)
) WITHOUT ROWID;
-- Signed tree heads, kept so that old ones stay available for consistency proofs.
CREATE TABLE checkpoints (
    org_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, size)
) WITHOUT ROWID;
