-- A per-organization change counter: every change to a credential, an IP rule or a role of
-- the organization increments it, so nodes can keep cached credentials until it moves
-- (expand-only: existing organizations start at 0).
ALTER TABLE organizations ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
