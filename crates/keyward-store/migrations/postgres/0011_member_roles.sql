-- Member roles, last logins and invitations.
--
-- Members who existed before roles keep what they could do: they become owners. An
-- invitation is stored only as the SHA-256 digest of the token in its link; accepting one
-- deletes it, so a link works once.
ALTER TABLE members ADD COLUMN role TEXT NOT NULL DEFAULT 'owner'
    CHECK (role IN ('owner', 'admin', 'developer', 'viewer'));
ALTER TABLE members ADD COLUMN last_login_at BIGINT;

CREATE INDEX members_by_organization ON members (organization_id);

CREATE TABLE member_invitations (
    digest          BYTEA    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    role            TEXT    NOT NULL
        CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_by      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL
);

CREATE INDEX member_invitations_by_organization ON member_invitations (organization_id);
