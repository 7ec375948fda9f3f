-- Webhooks: each organization's endpoints, the outbox of messages to deliver, the attempts
-- made, and what the scheduled notices have already said.
--
-- An endpoint's signing secret is stored sealed (AES-256-GCM under the deployment's master
-- key): signing needs the secret itself. `events` is '*' or the event types between commas
-- with a comma at each end, so subscribers are found with one LIKE.
CREATE TABLE webhooks (
    id               TEXT    NOT NULL PRIMARY KEY,
    organization_id  TEXT    NOT NULL REFERENCES organizations (id),
    url              TEXT    NOT NULL,
    events           TEXT    NOT NULL,
    description      TEXT,
    enabled          INTEGER NOT NULL,
    disabled_reason  TEXT,
    sealed_secret    TEXT    NOT NULL,
    sealed_previous_secret TEXT,
    previous_secret_until  INTEGER,
    failing_since    INTEGER,
    created_at       INTEGER NOT NULL,
    created_by       TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL
) STRICT;

CREATE INDEX webhooks_by_organization ON webhooks (organization_id);

-- The outbox: one row per message and endpoint, written in the transaction of the change
-- that caused it. A node claims due rows by setting lease_until (on PostgreSQL under
-- FOR UPDATE SKIP LOCKED), so each attempt is made by one node; a lease that ran out
-- (the node died) makes the row due again.
CREATE TABLE webhook_deliveries (
    message_id       TEXT    NOT NULL,
    webhook_id       TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    organization_id  TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    lease_owner      TEXT,
    PRIMARY KEY (message_id, webhook_id)
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, message_id);

CREATE TABLE webhook_attempts (
    message_id       TEXT    NOT NULL,
    webhook_id       TEXT    NOT NULL,
    attempt          INTEGER NOT NULL,
    attempted_at     INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    response_status  INTEGER,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (message_id, webhook_id, attempt),
    FOREIGN KEY (message_id, webhook_id)
        REFERENCES webhook_deliveries (message_id, webhook_id) ON DELETE CASCADE
) STRICT;

-- Expiry notices already sent: one per credential, kind (expiring_7d, expiring_1d,
-- expired) and expiry, so a scan repeated on any node, or after a restart, sends none twice;
-- a changed expiry gets its own.
CREATE TABLE expiry_notices (
    credential_id    TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    expires_at       INTEGER NOT NULL,
    noticed_at       INTEGER NOT NULL,
    PRIMARY KEY (credential_id, kind, expires_at)
) STRICT;

-- When an organization rule last refused a request, and when that was last announced.
ALTER TABLE ip_rules ADD COLUMN last_blocked_at INTEGER;
ALTER TABLE ip_rules ADD COLUMN blocked_noticed_at INTEGER;

-- When a secret of the credential was last reported found in public.
ALTER TABLE credentials ADD COLUMN exposed_at INTEGER;
