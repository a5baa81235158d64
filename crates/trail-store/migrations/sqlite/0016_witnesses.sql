-- Witnesses of the installation log (C2SP tlog-witness): the size each last cosigned,
-- its last answer, the backoff, and the lease one server holds while submitting.
CREATE TABLE witnesses (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    detail TEXT NOT NULL DEFAULT '',
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at INTEGER NOT NULL DEFAULT 0,
    lease_holder TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL DEFAULT 0
);
-- Their cosignatures of installation checkpoints, one line per witness and size.
CREATE TABLE cosignatures (
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (size, witness)
);
