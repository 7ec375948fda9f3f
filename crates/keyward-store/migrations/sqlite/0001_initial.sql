-- Keyward's first schema, SQLite dialect. Times are integer milliseconds since the epoch;
-- ids are TypeID text; digests are raw bytes. No column ever holds a secret in plain text.

CREATE TABLE organizations (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE credentials (
    id                  TEXT    NOT NULL PRIMARY KEY,
    organization_id     TEXT    NOT NULL REFERENCES organizations (id),
    environment         TEXT    NOT NULL CHECK (environment IN ('live', 'test')),
    name                TEXT    NOT NULL,
    description         TEXT,
    permissions         TEXT    NOT NULL,
    role                TEXT,
    ip_allowlist        TEXT    NOT NULL,
    rate_limit_override INTEGER,
    not_before          INTEGER,
    expires_at          INTEGER,
    metadata            TEXT    NOT NULL,
    owner_id            TEXT,
    status              TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'revoked')),
    prefix              TEXT    NOT NULL,
    hint                TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    created_by          TEXT    NOT NULL,
    updated_at          INTEGER NOT NULL,
    revoked_at          INTEGER,
    last_used_at        INTEGER,
    last_used_ip        TEXT,
    version             INTEGER NOT NULL
) STRICT;

CREATE INDEX credentials_by_organization ON credentials (organization_id, id);
CREATE INDEX credentials_by_owner ON credentials (organization_id, owner_id);

-- One row per live secret of a credential: its API key and client secret, plus the old
-- ones of a rotation while their grace period lasts.
CREATE TABLE credential_secrets (
    lookup_digest BLOB    NOT NULL PRIMARY KEY,
    credential_id TEXT    NOT NULL REFERENCES credentials (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('api_key', 'client_secret')),
    salt          BLOB    NOT NULL,
    salted_hash   BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX credential_secrets_by_credential ON credential_secrets (credential_id);

-- Append-only: the store has no statement that updates or deletes a row here.
CREATE TABLE audit_events (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL,
    occurred_at     INTEGER NOT NULL,
    action          TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    source_ip       TEXT,
    target_id       TEXT,
    details         TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_events_by_organization ON audit_events (organization_id, id);
