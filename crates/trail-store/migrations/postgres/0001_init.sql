CREATE TABLE orgs (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- One row per organization's log: its size, locked by every append to it.
CREATE TABLE logs (
    org_id BIGINT PRIMARY KEY REFERENCES orgs(id),
    size BIGINT NOT NULL DEFAULT 0
);
CREATE SEQUENCE event_pos;
CREATE TABLE events (
    org_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    id UUID NOT NULL,
    ts BIGINT NOT NULL,
    received BIGINT NOT NULL,
    category TEXT NOT NULL,
    operation TEXT NOT NULL,
    result SMALLINT NOT NULL,
    status_code INTEGER,
    actor_id TEXT,
    actor_name TEXT,
    actor_email TEXT,
    company TEXT,
    request_id TEXT,
    resource_type TEXT,
    resource_id TEXT,
    resource_name TEXT,
    workspace_id TEXT,
    workspace_name TEXT,
    project TEXT,
    cluster TEXT,
    namespace TEXT,
    ip INET,
    doc TSVECTOR NOT NULL,
    leaf BYTEA NOT NULL,
    PRIMARY KEY (org_id, seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX events_time ON events (ts DESC, pos DESC);
CREATE INDEX events_org_time ON events (org_id, ts DESC, pos DESC);
CREATE INDEX events_id ON events (id);
CREATE INDEX events_category ON events (lower(category), ts DESC);
CREATE INDEX events_actor_email ON events (lower(actor_email), ts DESC);
CREATE INDEX events_request ON events (request_id);
CREATE INDEX events_resource ON events (lower(resource_name), ts DESC);
CREATE INDEX events_ip ON events (ip);
CREATE INDEX events_doc ON events USING GIN (doc);
-- Idempotency keys, unique per organization (a partitioned table cannot hold the
-- unique index itself).
CREATE TABLE idempotency (
    org_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    id UUID NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);
CREATE TABLE tree_nodes (
    org_id BIGINT NOT NULL,
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (org_id, level, idx)
);
CREATE TABLE checkpoints (
    org_id BIGINT NOT NULL,
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, size)
);
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    scope TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    user_id BIGINT,
    label TEXT NOT NULL DEFAULT ''
);
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    must_change BOOLEAN NOT NULL DEFAULT false,
    disabled BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE TABLE sessions (
    hash BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE roles (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    view TEXT NOT NULL,
    export TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE schedules (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    weekday SMALLINT,
    at_minute INTEGER NOT NULL,
    query TEXT NOT NULL,
    format TEXT NOT NULL,
    recipients TEXT NOT NULL,
    directory TEXT,
    created_by TEXT NOT NULL,
    next_run BIGINT NOT NULL,
    last_run BIGINT
);
