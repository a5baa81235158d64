-- Migration 0007 lost its UPDATE when migrations moved into files, so stores created
-- before schema 7 kept the company their events' actors claimed in the indexed copy,
-- and verify reported tampering that never happened. The Company column is the
-- organization: recomputed once more. The events' stored bytes are untouched; this
-- column is derived from them.
UPDATE events SET company = (SELECT o.slug FROM orgs o WHERE o.id = events.org_id)
WHERE company IS NOT (SELECT o.slug FROM orgs o WHERE o.id = events.org_id);
