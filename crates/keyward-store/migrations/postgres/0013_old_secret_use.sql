-- The last time a secret a rotation replaced was still presented (and refused), and from
-- where: the credential's page tells that some client has not moved to the new secret.
ALTER TABLE credentials ADD COLUMN old_secret_used_at BIGINT;
ALTER TABLE credentials ADD COLUMN old_secret_used_ip TEXT;
