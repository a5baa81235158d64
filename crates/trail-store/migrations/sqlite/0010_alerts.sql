-- Alerting (see `alerts.rs`): stored rule settings, destinations, the evaluator's
-- position and state per organization, and deliveries, persisted before they are
-- attempted. JSON arrays: destinations, recipients, secrets.
CREATE TABLE alert_rules (
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    query TEXT,
    threshold INTEGER NOT NULL,
    window_secs INTEGER NOT NULL,
    group_by TEXT,
    quiet_secs INTEGER NOT NULL,
    destinations TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE alert_destinations (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT,
    recipients TEXT NOT NULL,
    secrets TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE alert_evaluations (
    org_id INTEGER PRIMARY KEY REFERENCES orgs(id),
    cursor INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    rule TEXT NOT NULL,
    destination INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    last_code INTEGER,
    created_at INTEGER NOT NULL,
    done_at INTEGER
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);
CREATE INDEX alert_deliveries_org ON alert_deliveries (org_id, id);
