-- Archive files written by retention (see `archive`): the manifest as JSON. A row is
-- written in the transaction that deletes the archived events' rows.
CREATE TABLE archives (
    path TEXT PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    day TEXT NOT NULL,
    manifest TEXT NOT NULL
);
CREATE INDEX archives_org_day ON archives(org_id, day);
