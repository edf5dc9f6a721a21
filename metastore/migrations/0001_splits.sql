-- Sealed, immutable files in object storage (log and trace splits, metric blocks) and
-- where their writers' write-ahead logs stand. Applied once, in a transaction.

CREATE TABLE splits (
    split_id    TEXT PRIMARY KEY,
    signal      TEXT NOT NULL CHECK (signal IN ('logs', 'traces', 'metrics')),
    node_id     TEXT NOT NULL,
    -- 0 staged (being uploaded), 1 published (searchable), 2 marked for deletion
    state       SMALLINT NOT NULL CHECK (state IN (0, 1, 2)),
    object_key  TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    docs        BIGINT NOT NULL,
    min_ts      BIGINT NOT NULL,
    max_ts      BIGINT NOT NULL,
    tenants     TEXT[] NOT NULL,
    created_ms  BIGINT NOT NULL,
    -- when the state last changed: the janitor's grace periods count from it
    updated_ms  BIGINT NOT NULL
);

-- Listings prune by signal, state and time range in the index.
CREATE INDEX splits_by_time ON splits (signal, state, max_ts, min_ts);
CREATE INDEX splits_by_tenant ON splits USING GIN (tenants);

CREATE TABLE checkpoints (
    node_id     TEXT NOT NULL,
    signal      TEXT NOT NULL,
    -- highest WAL position whose records are in published splits
    lsn         BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (node_id, signal)
);
