-- Organization IP access rules (seeds 000, 002) and custom roles.

CREATE TABLE ip_rules (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    ip_network      TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('allow', 'deny')),
    description     TEXT,
    created_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    last_matched_at BIGINT
);

CREATE INDEX ip_rules_by_organization ON ip_rules (organization_id, id);

CREATE TABLE roles (
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    name            TEXT    NOT NULL,
    description     TEXT,
    scopes          TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    PRIMARY KEY (organization_id, name)
);
