-- Per-day counts (rollups) for facets, totals and timelines: kept in the same
-- transaction as the appends and deletions they count; filled here from the events
-- already stored. Days are UTC days since 1970 (microseconds floored).
CREATE TABLE day_counts (
    day INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    category TEXT NOT NULL COLLATE NOCASE,
    result INTEGER NOT NULL,
    is_view INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, org_id, category, result, is_view)
) WITHOUT ROWID;
CREATE TABLE day_actors (
    day INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    category TEXT NOT NULL COLLATE NOCASE,
    actor_email TEXT NOT NULL COLLATE NOCASE,
    actor_name TEXT,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, org_id, category, actor_email)
) WITHOUT ROWID;
INSERT INTO day_counts (day, org_id, category, result, is_view, n)
    SELECT (ts - ((ts % 86400000000) + 86400000000) % 86400000000) / 86400000000, org_id, category, result,
        (category = 'audit' AND operation = 'view'), COUNT(*)
    FROM events GROUP BY 1, 2, 3, 4, 5;
INSERT INTO day_actors (day, org_id, category, actor_email, actor_name, n)
    SELECT (ts - ((ts % 86400000000) + 86400000000) % 86400000000) / 86400000000, org_id, category, actor_email,
        MAX(actor_name), COUNT(*)
    FROM events WHERE actor_email IS NOT NULL GROUP BY 1, 2, 3, 4;
