-- The latest cut of a credential's access tokens: tokens minted before tokens_cut_at (their
-- generation) are refused from tokens_end_at on. Set by rotations and by disabling; both
-- NULL when the credential's tokens were never cut (expand-only).
ALTER TABLE credentials ADD COLUMN tokens_cut_at INTEGER;
ALTER TABLE credentials ADD COLUMN tokens_end_at INTEGER;
