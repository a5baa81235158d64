-- Emails are unique within an organization, not across the installation: one
-- organization's administrator must not learn that an address has an account in
-- another. Login picks the account whose password matches.
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
INSERT INTO users_new (id, org_id, email, name, role, password, must_change, disabled, created_at)
    SELECT id, org_id, email, name, role, password, must_change, disabled, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE UNIQUE INDEX users_org_email ON users(org_id, email);
CREATE INDEX users_email ON users(email);
