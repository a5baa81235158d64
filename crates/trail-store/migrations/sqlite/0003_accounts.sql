-- People who log in. Emails are unique across the installation (login is by email).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
-- Login sessions, by the SHA-256 of the cookie value.
CREATE TABLE sessions (
    hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);
-- Custom roles: the categories their holders may view and export (see Categories).
CREATE TABLE roles (
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL COLLATE NOCASE,
    view TEXT NOT NULL,
    export TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
) WITHOUT ROWID;
ALTER TABLE api_keys ADD COLUMN user_id INTEGER REFERENCES users(id);
ALTER TABLE api_keys ADD COLUMN label TEXT NOT NULL DEFAULT '';
