-- At most one first-run bootstrap per database, even when several nodes start together:
-- the node whose insert of the single row succeeds bootstraps; the others see a conflict.
CREATE TABLE bootstrap_claim (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    claimed_at INTEGER NOT NULL
) STRICT;
