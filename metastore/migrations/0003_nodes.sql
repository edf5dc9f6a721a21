-- Collectors' leases. A collector registers at start (its generation goes up by one),
-- renews its lease while it runs and is live while the lease lasts; publications carry
-- the generation they were made under and are refused once a newer one registered, so
-- a collector presumed dead that comes back cannot publish over its successor's work.
-- Lease times are PostgreSQL's clock: one clock for every process.

CREATE TABLE nodes (
    node_id        TEXT PRIMARY KEY,
    generation     BIGINT NOT NULL,
    -- where query servers reach it (its HTTP receiver: internal API, remote read)
    address        TEXT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    registered_ms  BIGINT NOT NULL
);
