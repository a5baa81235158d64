-- Emails are unique within an organization, not across the installation: one
-- organization's administrator must not learn that an address has an account in
-- another. Login picks the account whose password matches.
DROP INDEX IF EXISTS users_email;
CREATE UNIQUE INDEX IF NOT EXISTS users_org_email ON users (org_id, lower(email));
CREATE INDEX users_email ON users (lower(email));
