-- Streams (see `streams.rs`): where an organization's events are sent, the cursor (the
-- next seq to look at), health counters, and the lease of the server driving each.
-- JSON: headers (an object), secrets (an array).
CREATE TABLE streams (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT,
    address TEXT,
    tls BOOLEAN NOT NULL,
    format TEXT NOT NULL,
    query TEXT,
    headers TEXT NOT NULL,
    secrets TEXT NOT NULL,
    state TEXT NOT NULL,
    cursor BIGINT NOT NULL,
    last_seq BIGINT,
    sent BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    last_error TEXT,
    failing_since BIGINT,
    alerted BOOLEAN NOT NULL,
    last_sent_at BIGINT,
    owner TEXT,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX streams_org ON streams (org_id, id);
