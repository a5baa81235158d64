-- Idempotency keys outlive retention (they are no longer deleted with the archived
-- rows) and are forgotten by age: when the key's event was received.
ALTER TABLE idempotency ADD COLUMN received BIGINT NOT NULL DEFAULT 0;
UPDATE idempotency i SET received = e.received FROM events e WHERE e.org_id = i.org_id AND e.seq = i.seq;
