-- Scheduled exports (see Schedule). Recipients are a JSON array.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    weekday INTEGER,
    at_minute INTEGER NOT NULL,
    query TEXT NOT NULL,
    format TEXT NOT NULL,
    recipients TEXT NOT NULL,
    directory TEXT,
    created_by TEXT NOT NULL,
    next_run INTEGER NOT NULL,
    last_run INTEGER
);
