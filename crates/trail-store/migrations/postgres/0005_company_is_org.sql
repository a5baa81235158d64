-- The Company column is the organization, never the company an event's actor
-- claims: the indexed copy (used to sort) is recomputed once. The events' stored
-- bytes are untouched; this column is derived from them.
UPDATE events e SET company = o.slug FROM orgs o WHERE o.id = e.org_id AND e.company IS DISTINCT FROM o.slug;
