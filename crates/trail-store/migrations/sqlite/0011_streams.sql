-- Streams (see `streams.rs`): where an organization's events are sent, the cursor (the
-- next seq to look at), health counters, and the lease of the server driving each.
-- JSON: headers (an object), secrets (an array).
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT,
    address TEXT,
    tls INTEGER NOT NULL,
    format TEXT NOT NULL,
    query TEXT,
    headers TEXT NOT NULL,
    secrets TEXT NOT NULL,
    state TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    last_seq INTEGER,
    sent INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    last_error TEXT,
    failing_since INTEGER,
    alerted INTEGER NOT NULL,
    last_sent_at INTEGER,
    owner TEXT,
    lease_until INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX streams_org ON streams (org_id, id);
