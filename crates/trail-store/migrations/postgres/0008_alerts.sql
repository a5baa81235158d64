-- Alerting (see `alerts.rs`): stored rule settings, destinations, the evaluator's
-- position and state per organization, and deliveries, persisted before they are
-- attempted. JSON arrays: destinations, recipients, secrets.
CREATE TABLE alert_rules (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    query TEXT,
    threshold BIGINT NOT NULL,
    window_secs BIGINT NOT NULL,
    group_by TEXT,
    quiet_secs BIGINT NOT NULL,
    destinations TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE alert_destinations (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT,
    recipients TEXT NOT NULL,
    secrets TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE alert_evaluations (
    org_id BIGINT PRIMARY KEY REFERENCES orgs(id),
    cursor BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE alert_deliveries (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    rule TEXT NOT NULL,
    destination BIGINT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    last_error TEXT,
    last_code INTEGER,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);
CREATE INDEX alert_deliveries_org ON alert_deliveries (org_id, id);
