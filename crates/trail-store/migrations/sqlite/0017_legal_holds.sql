-- Legal holds: what retention must keep (an organization, or a query's events), placed
-- and released with a reason and by whom; released holds stay.
CREATE TABLE legal_holds (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    query TEXT,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at INTEGER NOT NULL,
    released_by TEXT,
    released_at INTEGER,
    release_reason TEXT
);
CREATE INDEX legal_holds_org ON legal_holds(org_id);
