-- Idempotency keys outlive retention: a key -> (id, seq) record of its own, kept after
-- the event's row is archived and deleted, for as long as the organization's keys can
-- come back ([retention] idempotency_days, by default the retention period).
CREATE TABLE idempotency (
    org_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;
INSERT OR IGNORE INTO idempotency (org_id, key, id, seq, received)
    SELECT org_id, idem, id, seq, received FROM events WHERE idem IS NOT NULL;
