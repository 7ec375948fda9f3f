-- Filler credentials for benchmarks: :count credentials with random digests, so that the
-- store's index has the size to measure at. Their secrets are unknown (nobody can use
-- them); the benchmark's own keys are created through the API.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO credentials (id, organization_id, environment, name, description, permissions, role,
    ip_allowlist, rate_limit_override, not_before, expires_at, metadata, owner_id, status, prefix,
    hint, created_at, created_by, updated_at, revoked_at, last_used_at, last_used_ip, version)
SELECT 'api_key_fill' || printf('%022d', i), (SELECT id FROM organizations LIMIT 1), 'live',
    'filler ' || i, NULL, '["dns:read"]', NULL, '[]', NULL, NULL, NULL, '{}', NULL, 'active',
    'kw_live_', 'fill', 0, 'bench', 0, NULL, NULL, NULL, 1
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count * 2)
INSERT INTO credential_secrets (lookup_digest, credential_id, kind, salt, salted_hash, created_at, expires_at)
SELECT randomblob(32), 'api_key_fill' || printf('%022d', (i + 1) / 2),
    CASE i % 2 WHEN 0 THEN 'api_key' ELSE 'client_secret' END, randomblob(16), randomblob(32), 0, NULL
FROM n;
