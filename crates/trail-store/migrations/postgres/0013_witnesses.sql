-- Witnesses of the installation log (C2SP tlog-witness): the size each last cosigned,
-- its last answer, the backoff, and the lease one server holds while submitting.
CREATE TABLE witnesses (
    name TEXT PRIMARY KEY,
    size BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    detail TEXT NOT NULL DEFAULT '',
    failures BIGINT NOT NULL DEFAULT 0,
    retry_at BIGINT NOT NULL DEFAULT 0,
    lease_holder TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0
);
-- Their cosignatures of installation checkpoints, one line per witness and size.
CREATE TABLE cosignatures (
    size BIGINT NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);
