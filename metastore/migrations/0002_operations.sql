-- The services catalog: every (tenant, service, span kind, operation) published trace
-- splits hold, and when a publication last held it. Query servers list it instead of
-- reading every split's terms; the janitor forgets entries unseen for longer than the
-- trace retention.

CREATE TABLE operations (
    tenant       TEXT NOT NULL,
    service      TEXT NOT NULL,
    span_kind    TEXT NOT NULL,
    name         TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, service, span_kind, name)
);
