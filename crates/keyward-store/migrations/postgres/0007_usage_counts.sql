-- Usage (R-OPS, issue #6): per credential, requests per minute by outcome, and how many of
-- them came by the `api_key` query parameter. Written in batches, pruned after the
-- retention period.
CREATE TABLE usage_counts (
    credential_id TEXT    NOT NULL,
    minute        BIGINT NOT NULL,
    outcome       TEXT    NOT NULL,
    count         BIGINT NOT NULL,
    via_query     BIGINT NOT NULL,
    PRIMARY KEY (credential_id, minute, outcome)
);

CREATE INDEX usage_counts_by_minute ON usage_counts (minute);
