CREATE TABLE orgs (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    scope TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- One row per event: copies of its fields that filters check exactly and sorts order
-- by (the event itself is in `leaves`). Text columns compare case-insensitively
-- (ASCII) so filters are forgiving. `pos` is timestamp * 512 + a slot, so the table
-- (and the FTS index) is in time order.
CREATE TABLE events (
    pos INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    id BLOB NOT NULL,
    ts INTEGER NOT NULL,
    received INTEGER NOT NULL,
    category TEXT NOT NULL COLLATE NOCASE,
    operation TEXT NOT NULL COLLATE NOCASE,
    result INTEGER NOT NULL,
    status_code INTEGER,
    actor_id TEXT COLLATE NOCASE,
    actor_name TEXT COLLATE NOCASE,
    actor_email TEXT COLLATE NOCASE,
    company TEXT COLLATE NOCASE,
    request_id TEXT,
    resource_type TEXT COLLATE NOCASE,
    resource_id TEXT COLLATE NOCASE,
    resource_name TEXT COLLATE NOCASE,
    workspace_id TEXT COLLATE NOCASE,
    workspace_name TEXT COLLATE NOCASE,
    project TEXT COLLATE NOCASE,
    cluster TEXT COLLATE NOCASE,
    namespace TEXT COLLATE NOCASE,
    ip BLOB,
    idem TEXT
);
-- Each event's exact stored JSON (the Merkle leaf), in log order: verification and
-- scans read it sequentially, and the narrow `events` rows keep sorts and counts fast.
CREATE TABLE leaves (
    org_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX events_seq ON events(org_id, seq);
CREATE UNIQUE INDEX events_id ON events(id);
CREATE UNIQUE INDEX events_idem ON events(org_id, idem) WHERE idem IS NOT NULL;
-- The filter and search index: one document per event holding a token per filterable
-- field value (see `terms`) and the free text that `q` searches (see `search_text`).
-- Its rowid is events.pos, which orders by time, so FTS5 returns matches newest first
-- and stops after one page. Contentless with detail=none: the smallest and fastest
-- FTS5 index; exact conditions (and phrase adjacency) are checked on the row.
CREATE VIRTUAL TABLE events_fts USING fts5(
    doc, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 2'
);
-- Every plain word (ASCII letters, 2 to 32 of them) that occurs in an indexed document:
-- a search for a word prefix becomes an OR of these words, which FTS5 walks lazily
-- (its own prefix queries read every matching posting first).
CREATE TABLE search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;
-- Merge segments less eagerly while ingesting; the writer merges when idle instead.
INSERT INTO events_fts(events_fts, rank) VALUES('automerge', 8);
