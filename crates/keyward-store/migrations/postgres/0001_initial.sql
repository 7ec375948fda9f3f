-- Keyward's first schema, PostgreSQL dialect. Times are integer milliseconds since the epoch;
-- ids are TypeID text; digests are raw bytes. No column ever holds a secret in plain text.

CREATE TABLE organizations (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE TABLE credentials (
    id                  TEXT    NOT NULL PRIMARY KEY,
    organization_id     TEXT    NOT NULL REFERENCES organizations (id),
    environment         TEXT    NOT NULL CHECK (environment IN ('live', 'test')),
    name                TEXT    NOT NULL,
    description         TEXT,
    permissions         TEXT    NOT NULL,
    role                TEXT,
    ip_allowlist        TEXT    NOT NULL,
    rate_limit_override BIGINT,
    not_before          BIGINT,
    expires_at          BIGINT,
    metadata            TEXT    NOT NULL,
    owner_id            TEXT,
    status              TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'revoked')),
    prefix              TEXT    NOT NULL,
    hint                TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    created_by          TEXT    NOT NULL,
    updated_at          BIGINT  NOT NULL,
    revoked_at          BIGINT,
    last_used_at        BIGINT,
    last_used_ip        TEXT,
    version             BIGINT  NOT NULL
);

CREATE INDEX credentials_by_organization ON credentials (organization_id, id);
CREATE INDEX credentials_by_owner ON credentials (organization_id, owner_id);

-- One row per live secret of a credential: its API key and client secret, plus the old
-- ones of a rotation while their grace period lasts.
CREATE TABLE credential_secrets (
    lookup_digest BYTEA   NOT NULL PRIMARY KEY,
    credential_id TEXT    NOT NULL REFERENCES credentials (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('api_key', 'client_secret')),
    salt          BYTEA   NOT NULL,
    salted_hash   BYTEA   NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT 
);

CREATE INDEX credential_secrets_by_credential ON credential_secrets (credential_id);

-- Append-only: the store has no statement that updates or deletes a row here.
CREATE TABLE audit_events (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL,
    occurred_at     BIGINT  NOT NULL,
    action          TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    source_ip       TEXT,
    target_id       TEXT,
    details         TEXT    NOT NULL
);

CREATE INDEX audit_events_by_organization ON audit_events (organization_id, id);
