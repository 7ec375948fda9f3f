-- OAuth (R-OAUTH): the keys that sign access tokens, and revoked token ids.
--
-- A signing key's private half is stored sealed (AES-256-GCM under the deployment's master
-- key) and erased once a newer key signs; its public half stays published until the last
-- token it signed has expired.
CREATE TABLE signing_keys (
    kid          TEXT    NOT NULL PRIMARY KEY,
    generation   BIGINT  NOT NULL UNIQUE,
    algorithm    TEXT    NOT NULL,
    public_jwk   TEXT    NOT NULL,
    sealed_private_key TEXT,
    created_at   BIGINT  NOT NULL,
    activates_at BIGINT  NOT NULL,
    retired_at   BIGINT,
    published_until BIGINT
);

CREATE TABLE revoked_tokens (
    jti             TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    credential_id   TEXT    NOT NULL,
    expires_at      BIGINT  NOT NULL,
    revoked_at      BIGINT  NOT NULL
);
