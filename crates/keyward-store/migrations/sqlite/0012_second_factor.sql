-- A member's second factor: a TOTP secret, sealed under the deployment's master key (it
-- is needed to compute codes), the last time step accepted (a code works once), and
-- recovery codes, each stored only as its SHA-256 and used at most once.
ALTER TABLE members ADD COLUMN totp_secret TEXT;
ALTER TABLE members ADD COLUMN totp_last_step INTEGER;

CREATE TABLE member_recovery_codes (
    digest  BLOB    NOT NULL PRIMARY KEY,
    user_id TEXT    NOT NULL REFERENCES members (id),
    used_at INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX member_recovery_codes_by_user ON member_recovery_codes (user_id);
