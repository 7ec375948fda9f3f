-- Organization members who log in to the dashboard (R-UI), and their sessions.
--
-- A password is stored only as its argon2id hash (a PHC string); a session only as the
-- SHA-256 digest of its random token. Setting a password deletes the member's sessions.
CREATE TABLE members (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    email           TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    password_changed_at BIGINT NOT NULL
);

CREATE TABLE member_sessions (
    digest     BYTEA    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES members (id),
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);

CREATE INDEX member_sessions_by_user ON member_sessions (user_id);
