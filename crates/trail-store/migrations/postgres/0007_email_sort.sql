-- Sorting by email within an organization walks this index (per monthly partition,
-- merged in order) and stops after one page, instead of sorting every row of the
-- organization. The expression is the list's sort expression for email.
CREATE INDEX events_email_sort ON events (org_id, (COALESCE(lower(actor_email), '')), pos);
