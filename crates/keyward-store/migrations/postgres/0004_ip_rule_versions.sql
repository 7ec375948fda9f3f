-- Version-checked IP rule changes: a change made from a stale read is refused, not applied
-- over a concurrent one (expand-only: existing rows start at version 1).
ALTER TABLE ip_rules ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
